"""Cost of probing and of each error-pathway perturbation relative to plain training (resnet18 64x64, CPU).

    python benchmarks/phases_overhead.py

Times a full training step (sign symmetry, SGD) with each ``phases`` perturbation against the same step
without, interleaved medians; then the cost of one ``bc.probe`` call in training steps, and the overhead that
probing adds at intervals of 25, 100 and 1000 steps: 1 + probe_cost / interval.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians  # noqa: E402
from feedback_step import build_step  # noqa: E402

import biocircuits as bc  # noqa: E402
from biocircuits.models import build_model  # noqa: E402

PHASES = {
    "none": {},
    "error_noise 0.1": {"error_noise": 0.1},
    "error_quantization 16": {"error_quantization": 16},
    "error_delay 2 (stored)": {"error_delay": 2},
    "error_delay 2 (current)": {"error_delay": 2, "backward_state": "current"},
    "error_delay 2 (trace 0.9)": {"error_delay": 2, "backward_state": "trace", "trace_decay": 0.9},
    "error_filter 4": {"error_filter": 4},
    "interference 0.1": {"interference": 0.1},
}
# the targets (ratio to none)
TARGETS = {
    "error_noise 0.1": 1.10,
    "error_quantization 16": 1.10,
    "error_delay 2 (current)": 1.05,
    "error_delay 2 (trace 0.9)": 1.10,
    "error_filter 4": 1.05,
    "interference 0.1": 1.05,
}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18", help="a registered model (the smoke test uses a small one)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--json")
    args = p.parse_args(argv)
    ns = argparse.Namespace(
        device="cpu", channels_last=False, compile=False, batch=args.batch, size=args.size, amp=False
    )
    torch.manual_seed(0)
    base = build_model(args.model, (3, args.size, args.size), 1000, {})
    steps = {
        name: build_step(copy.deepcopy(base), ns, {"feedback": {"rule": "sign_symmetry"}, "phases": ph})
        for name, ph in PHASES.items()
    }
    medians = interleaved_medians(steps, torch.device("cpu"), 2, args.reps)
    print(f"{args.model} {args.size}x{args.size} batch {args.batch}, sign_symmetry, CPU; median of {args.reps} steps")
    rows = {}
    for name, t in medians.items():
        rows[name] = {"step_ms": t * 1e3, "ratio": t / medians["none"]}
        target = f"  (target <= {TARGETS[name]:.2f})" if name in TARGETS else ""
        print(f"  {name:<28} {t * 1e3:8.1f} ms  {t / medians['none']:.3f}x{target}")
    model = bc.apply(copy.deepcopy(base), {"feedback": {"rule": "sign_symmetry"}})
    x, y = torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 1000, (args.batch,))
    bc.probe(model, x, y)
    probe_s = []
    for _ in range(max(3, args.reps // 3)):
        t0 = time.perf_counter()
        bc.probe(model, x, y)
        probe_s.append(time.perf_counter() - t0)
    cost = statistics.median(probe_s) / medians["none"]
    print(
        f"  one probe = {cost:.2f} training steps; overhead at interval 25: {1 + cost / 25:.3f}x, "
        f"100: {1 + cost / 100:.3f}x, 1000: {1 + cost / 1000:.4f}x"
    )
    result = {"rows": rows, "probe_cost_steps": cost}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
