"""Timing variants that each own a model copy (same starting weights) against a reference variant: interleaved
medians of the full training step, their ratios, the bytes autograd saves, and a Markdown table with the machine's
load average. Used by ``dann_step.py`` and ``weight_mirror_step.py``.

The scripts import ``biocircuits`` from this checkout, or from ``PYTHONPATH`` when it is set (to time another
commit's code with the same script: ``PYTHONPATH=/path/to/old/checkout python benchmarks/dann_step.py``)."""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(1, str(ROOT))

import torch  # noqa: E402
from common import interleaved_medians, measure_memory, synthetic_batch, training_step  # noqa: E402
from torch import nn  # noqa: E402

import biocircuits as bc  # noqa: E402
from biocircuits.models import build_model  # noqa: E402


def arguments(doc: str, reps: int, quick_reps: int) -> argparse.ArgumentParser:
    """The options every such script takes; ``--quick`` sets ``quick_reps`` interleaved rounds and one warm-up."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=reps)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--quick", action="store_true", help=f"{quick_reps} rounds, one warm-up step")
    p.add_argument("--only", nargs="+", metavar="TEXT", help="time only variants whose name contains one of these")
    p.add_argument("--json", help="write the results here")
    p.set_defaults(device="cpu", channels_last=False, amp=False, quick_reps=quick_reps)
    return p


def build_step(base: nn.Module, args, spec: dict | None) -> Callable[[], None]:
    """A full SGD step (momentum 0.9, weight decay 1e-4) of a copy of ``base`` converted by ``spec`` (None: plain
    autograd), the optimiser bound to the model's hooks."""
    model = copy.deepcopy(base)
    if spec is not None:
        bc.apply(model, spec)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    if spec is not None:
        bc.bind(opt, model)
    x, y = synthetic_batch(args, torch.device("cpu"))
    return lambda: training_step(model, opt, x, y, False)


def repeated(step: Callable[[], None], times: int) -> Callable[[], None]:
    """``step`` run ``times`` times per call."""

    def steps() -> None:
        for _ in range(times):
            step()

    return step if times == 1 else steps


def run(args, variants: dict[str, tuple], title: str) -> dict:
    """Times ``variants`` ({name: (spec, reference name[, period])}) in interleaved rounds; prints and returns the
    table. A variant with a period k (work scheduled every k steps) is timed over k consecutive steps per round and
    divided by k, so its median includes the scheduled work."""
    if args.quick:
        args.reps, args.warmup = args.quick_reps, 1
    if args.only:
        keep = {n for n in variants if any(t in n for t in args.only)}
        while not {variants[k][1] for k in keep} <= keep:  # and the references they are timed against
            keep |= {variants[k][1] for k in keep}
        variants = {n: v for n, v in variants.items() if n in keep}
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return timed_table(args, variants, title)
    finally:
        torch.set_num_threads(threads)


def timed_table(args, variants: dict[str, tuple], title: str) -> dict:
    torch.manual_seed(0)
    base = build_model(args.model, (3, args.size, args.size), 1000, {})
    load_before = os.getloadavg()
    period = {name: v[2] if len(v) > 2 else 1 for name, v in variants.items()}
    steps = {name: repeated(build_step(base, args, v[0]), period[name]) for name, v in variants.items()}
    medians = interleaved_medians(steps, torch.device("cpu"), args.warmup, args.reps)
    medians = {name: t / period[name] for name, t in medians.items()}
    load_after = os.getloadavg()
    del steps
    memory = {}
    for name, v in variants.items():  # one model resident at a time
        step = build_step(base, args, v[0])
        step()
        memory[name] = measure_memory(step, torch.device("cpu"))
        del step
    rows = {}
    for name, v in variants.items():
        ref = v[1]
        rows[name] = {
            "step_ms": medians[name] * 1e3,
            "vs": ref,
            "ratio": medians[name] / medians[ref],
            "saved_mb": memory[name] / 2**20,
            "saved_ratio": memory[name] / memory[ref] if memory[ref] else float("nan"),
        }
    load = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    print(
        f"\n{title}: {args.model} {args.size}x{args.size}, batch {args.batch}, {args.threads} threads, median of "
        f"{args.reps} interleaved steps; {load}; torch {torch.__version__}, biocircuits from "
        f"{Path(bc.__file__).parent}\n"
    )
    print("| variant | step ms | vs | ratio | saved-for-backward MB | ratio |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(
            f"| {name} | {r['step_ms']:.1f} | {r['vs']} | {r['ratio']:.3f} | {r['saved_mb']:.1f} | "
            f"{r['saved_ratio']:.3f} |"
        )
    result = {"args": vars(args), "load_average": [load_before, load_after], "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result
