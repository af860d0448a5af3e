"""Training step time of a rate RNN with backprop through time and a feedback rule, against plain autograd BPTT of
the same model (same init), and the online rules for reference; torch's GRU and LSTM converted against their own
kernels.

    python benchmarks/recurrent_step.py            # rate_rnn 256 units, T = 100, batch 32, 2 threads (~2-4 min)
    python benchmarks/recurrent_step.py --quick    # fewer rounds (~1 min)

One step: zero the gradients, forward, cross-entropy at every step, backward (for ``eprop`` / ``rflo``: the online
trial, no graph), SGD step through ``bc.bind``. The variants are timed in turn, in a fresh random order each round;
"x autograd" is the median over rounds of each round's ratio to its baseline in that round (``autograd``: the
unconverted RateRNN; for the GRU / LSTM rows the unconverted torch module, whose fused kernel the converted one's
Python time loop replaces). Memory: the peak bytes of live tensors the step's ops create (each op's new storages
counted while they live; the parameters and the batch, made before the step, left out), as in
``recurrent_memory.py``; and the number of aten ops one step dispatches (independent of the machine's load).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recurrent_memory import LiveBytes  # noqa: E402

import biocircuits as bc  # noqa: E402
from biocircuits.models.recurrent import RateRNN  # noqa: E402
from biocircuits.recurrent import online_learner  # noqa: E402
from biocircuits.train.targets import task_loss  # noqa: E402

# name -> (model kind, feedback section or None for plain autograd, baseline name)
VARIANTS: dict[str, tuple[str, dict | None, str]] = {
    "autograd": ("rate", None, "autograd"),
    "bp": ("rate", {"rule": "bp"}, "autograd"),
    "fa": ("rate", {"rule": "fa"}, "autograd"),
    "sign_symmetry": ("rate", {"rule": "sign_symmetry"}, "autograd"),
    "kolen_pollack": ("rate", {"rule": "kolen_pollack"}, "autograd"),
    "eprop (symmetric)": ("rate", {"rule": "eprop"}, "autograd"),
    "rflo": ("rate", {"rule": "rflo"}, "autograd"),
    "GRU autograd (torch kernel)": ("gru", None, "GRU autograd (torch kernel)"),
    "GRU fa": ("gru", {"rule": "fa"}, "GRU autograd (torch kernel)"),
    "LSTM autograd (torch kernel)": ("lstm", None, "LSTM autograd (torch kernel)"),
    "LSTM fa": ("lstm", {"rule": "fa"}, "LSTM autograd (torch kernel)"),
}


class TorchRNN(nn.Module):
    """torch's GRU or LSTM (batch first) with a linear readout at every step: logits [B, T, C]."""

    def __init__(self, kind: str, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        self.rnn = (nn.GRU if kind == "gru" else nn.LSTM)(n_in, n_hidden, batch_first=True)
        self.readout = nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rnn(x)[0])


def make_step(name: str, args: argparse.Namespace) -> Callable[[], None]:
    """One training step of variant ``name`` on a seeded batch; every variant of a kind starts from the same init."""
    kind, feedback, _ = VARIANTS[name]
    torch.manual_seed(0)
    if kind == "rate":
        model: nn.Module = RateRNN(args.inputs, args.hidden, args.classes, activation=args.activation)
    else:
        model = TorchRNN(kind, args.inputs, args.hidden, args.classes)
    if feedback is not None:
        model = bc.apply(model, {"feedback": feedback})
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    opt = opt if feedback is None else bc.bind(opt, model)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, args.steps, args.inputs, generator=gen)
    y = torch.randint(0, args.classes, (args.batch, args.steps), generator=gen)
    learner = online_learner(model)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        if learner is not None:
            learner.accumulate(x, y)
        else:
            task_loss(model(x), y).backward()
        opt.step()

    return step


def interleaved_ratios(steps: dict[str, Callable[[], None]], warmup: int, reps: int) -> dict[str, dict[str, float]]:
    """Per variant: the median seconds per step and the median over rounds of (its time / its baseline's time in the
    same round); the variants run in a fresh random order each round."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    order, names = random.Random(0), list(steps)
    for _ in range(reps):
        order.shuffle(names)
        for name in names:
            begin = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - begin)
    out = {}
    for name, own in times.items():
        base = times[VARIANTS[name][2]]
        ratios = [t / b for t, b in zip(own, base, strict=True)]
        out[name] = {"step_ms": 1e3 * statistics.median(own), "ratio": statistics.median(ratios)}
    return out


def peak_mb(step: Callable[[], None]) -> float:
    with LiveBytes() as mode:
        step()
    return mode.peak / 2**20


class OpCount(TorchDispatchMode):
    """The number of aten ops one step dispatches (a load-independent measure of its per-op overhead)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def op_count(step: Callable[[], None]) -> int:
    with OpCount() as mode:
        step()
    return mode.count


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| variant | ms / step | x autograd (median of ratios) | aten ops / step | peak MB | x autograd memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        base = rows[VARIANTS[name][2]]["peak_mb"]
        lines.append(
            f"| {name} | {r['step_ms']:.1f} | {r['ratio']:.2f} | {r['ops']} | {r['peak_mb']:.2f} "
            f"| {r['peak_mb'] / base:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--steps", type=int, default=100, help="sequence length T")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--inputs", type=int, default=3)
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--activation", default="relu", help="rate_rnn's activation (its default: relu)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=20, help="timed rounds")
    p.add_argument("--quick", action="store_true", help="6 timed rounds, 1 warm-up")
    p.add_argument("--only", nargs="+", default=None, help="variants to time (their baselines are added)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*kolen_pollack with weight decay 0")  # speed only: no training here
    names = list(VARIANTS) if args.only is None else [n for n in VARIANTS if n in args.only]
    names = list(dict.fromkeys([VARIANTS[n][2] for n in names] + names))
    steps = {name: make_step(name, args) for name in names}
    reps, warmup = (6, 1) if args.quick else (args.reps, 2)
    rows = interleaved_ratios(steps, warmup, reps)
    rows = {name: rows[name] for name in VARIANTS if name in rows}
    for name in names:
        rows[name]["peak_mb"] = peak_mb(steps[name])
        rows[name]["ops"] = op_count(steps[name])
    text = table(rows)
    print(
        f"rate_rnn {args.hidden} {args.activation} units, T = {args.steps}, batch {args.batch}, "
        f"{args.threads} threads, torch {torch.__version__}, {reps} rounds\n\n{text}"
    )
    result = {"args": vars(args) | {"json": None}, "torch": torch.__version__, "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
