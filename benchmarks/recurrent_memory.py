"""Memory and step time of one training step of a rate RNN against the sequence length: backprop through time
(autograd, rule bp) against the online rules e-prop (symmetric, random) and RFLO, which keep eligibility traces
instead of the graph.

    python benchmarks/recurrent_memory.py --json docs/figures/recurrent_memory_cpu.json

rate_rnn with 256 units, batch 32, T = 50, 200, 800 by default. Memory: on CUDA the peak allocated bytes of the
step; on the CPU the peak bytes of live tensors that the step's ops create (every op's outputs counted while they
live, :class:`LiveBytes`), so the parameters and the batch (made before the step) are left out. ``working`` is the
peak less the step's outputs (logits [B, T, C], which every method returns); ``flat`` is the ratio of the working
memory at the longest T to that at the shortest (the issue's target: <= 1.2 for the online rules).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import biocircuits as bc
from biocircuits.models.recurrent import RateRNN
from biocircuits.recurrent import online_learner
from biocircuits.train.targets import task_loss

METHODS = {  # name -> feedback section
    "bptt (bp)": {"rule": "bp"},
    "eprop symmetric": {"rule": "eprop"},
    "eprop random": {"rule": "eprop", "options": {"feedback": "random"}},
    "rflo": {"rule": "rflo"},
}


class LiveBytes(TorchDispatchMode):
    """The bytes of every tensor an op creates, counted while it lives (views and in-place results once, by
    storage); ``peak`` is the most at any time."""

    def __init__(self) -> None:
        super().__init__()
        self.live, self.peak, self.keys = 0, 0, set()

    def _free(self, key: int, nbytes: int) -> None:
        self.keys.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t._is_view() and t.device.type != "meta":
                key = t.untyped_storage().data_ptr()
                if key and key not in self.keys and key not in inputs:  # (a view or an in-place result)
                    nbytes = t.untyped_storage().nbytes()
                    self.keys.add(key)
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, key, nbytes)
        return out


def make_step(method: str, steps: int, args: argparse.Namespace, device: torch.device):
    """(model, a function running one training step's gradient: forward + backward, or the online trial)."""
    torch.manual_seed(0)
    model = bc.apply(RateRNN(args.inputs, args.hidden, args.classes, activation="tanh"), {"feedback": METHODS[method]})
    model.to(device)
    x = torch.randn(args.batch, steps, args.inputs, device=device)
    y = torch.randint(0, args.classes, (args.batch, steps), device=device)
    learner = online_learner(model)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        if learner is not None:
            learner.accumulate(x, y)
        else:
            task_loss(model(x), y).backward()

    return step


def measure(method: str, steps: int, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    step = make_step(method, steps, args, device)
    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        with LiveBytes() as mode:
            step()
        peak = mode.peak
    times = []
    for _ in range(args.reps):
        begin = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - begin)
    outputs = args.batch * steps * args.classes * 4
    return {"peak_mb": peak / 2**20, "working_mb": (peak - outputs) / 2**20, "step_s": statistics.median(times)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 800])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--inputs", type=int, default=3)
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows: dict[str, dict] = {}
    for method in METHODS:
        per_length = {str(t): measure(method, t, args, device) for t in args.lengths}
        working = [r["working_mb"] for r in per_length.values()]
        rows[method] = {"lengths": per_length, "flat": working[-1] / working[0]}
        line = "  ".join(
            f"T={t}: {r['peak_mb']:7.2f} MB ({r['working_mb']:7.2f} working) {r['step_s'] * 1e3:7.1f} ms"
            for t, r in per_length.items()
        )
        print(f"{method:16s} {line}  working(T max)/working(T min) = {rows[method]['flat']:.2f}", flush=True)
    result = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "hidden": args.hidden,
        "batch": args.batch,
        "rows": rows,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
