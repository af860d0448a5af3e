"""Where each cheap variant's extra time goes: torch.profiler over full training steps, against plain autograd.

    python benchmarks/profile_step.py                  # resnet18 64x64, batch 32, 3 profiled steps per variant
    python benchmarks/profile_step.py --quick          # 32x32, batch 8, 1 profiled step
    python benchmarks/profile_step.py --only softplus  # variants whose name contains one of these

For each variant it prints (Markdown) the top ops by self CPU time per step, and the ops whose count or self CPU
time per step differ from plain autograd's (the variant's extra work), with the bytes they allocate per step.
Counts and bytes do not depend on the machine's load; times do (read them as shares, not absolutes).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feedback_step import build_step  # noqa: E402

from biocircuits.models import build_model  # noqa: E402

SS = {"rule": "sign_symmetry"}
VARIANTS: dict[str, dict | None] = {
    "plain autograd": None,
    "sign_symmetry": {"feedback": SS},
    "kolen_pollack": {"feedback": {"rule": "kolen_pollack"}},
    "dale_abs+sign_symmetry": {"feedback": SS, "dale": {"enforce": "abs"}},
    "dale_softplus+sign_symmetry": {"feedback": SS, "dale": {"enforce": "softplus"}},
    "error_noise 0.1 (sign_symmetry)": {"feedback": SS, "phases": {"error_noise": 0.1}},
    "error_quantization 16 (sign_symmetry)": {"feedback": SS, "phases": {"error_quantization": 16}},
}


def op_table(step: Callable[[], None], steps: int) -> dict[str, dict[str, float]]:
    """{op name: {count, self_ms, bytes}} per step, over ``steps`` profiled steps (after one unprofiled)."""
    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(steps):
            step()
    return {
        e.key: {
            "count": e.count / steps,
            "self_ms": e.self_cpu_time_total / 1e3 / steps,
            "bytes": max(e.self_cpu_memory_usage, 0) / steps,
        }
        for e in prof.key_averages()
    }


def top_rows(ops: dict[str, dict[str, float]], n: int) -> list[str]:
    rows = sorted(ops.items(), key=lambda kv: -kv[1]["self_ms"])[:n]
    return [f"| `{k}` | {v['count']:.0f} | {v['self_ms']:.1f} | {v['bytes'] / 2**20:.1f} |" for k, v in rows]


def extra_rows(ops: dict, ref: dict, n: int) -> list[str]:
    """Ops whose count per step differs from the reference's, or whose self time grew by 1 ms or more."""
    empty = {"count": 0.0, "self_ms": 0.0, "bytes": 0.0}
    diff = []
    for k in set(ops) | set(ref):
        a, b = ops.get(k, empty), ref.get(k, empty)
        dc, dt = a["count"] - b["count"], a["self_ms"] - b["self_ms"]
        if abs(dc) >= 0.5 or dt >= 1.0:
            diff.append((k, dc, dt, a["bytes"] - b["bytes"]))
    diff.sort(key=lambda r: (r[1] == 0 and r[3] == 0, -abs(r[3]), -r[2]))  # new ops and bytes first, then time
    return [f"| `{k}` | {dc:+.0f} | {dt:+.1f} | {db / 2**20:+.1f} |" for k, dc, dt, db in diff[:n]]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="profiled steps per variant")
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="32x32, batch 8, one profiled step")
    p.add_argument("--only", nargs="+", metavar="TEXT")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.steps = 32, 8, 1
    ns = argparse.Namespace(
        device="cpu", channels_last=False, compile=False, amp=False, size=args.size, batch=args.batch
    )
    torch.manual_seed(0)
    base = build_model(args.model, (3, args.size, args.size), 1000, {})
    names = [n for n in VARIANTS if n == "plain autograd" or not args.only or any(t in n for t in args.only)]
    tables = {n: op_table(build_step(copy.deepcopy(base), ns, VARIANTS[n]), args.steps) for n in names}
    ref = tables["plain autograd"]
    ref_ms = sum(v["self_ms"] for v in ref.values())
    print(f"{args.model} {args.size}x{args.size} batch {args.batch}, CPU, {torch.get_num_threads()} threads; per step")
    for name, ops in tables.items():
        total = sum(v["self_ms"] for v in ops.values())
        mb = sum(v["bytes"] for v in ops.values()) / 2**20
        print(f"\n### {name}: {total:.0f} ms self CPU per step (plain autograd {ref_ms:.0f}), {mb:.0f} MB allocated")
        print("\n| top op | calls | self ms | MB allocated |\n| --- | ---: | ---: | ---: |")
        print("\n".join(top_rows(ops, args.top)))
        if name != "plain autograd":
            print("\n| extra op vs plain autograd | calls | self ms | MB allocated |\n| --- | ---: | ---: | ---: |")
            print("\n".join(extra_rows(ops, ref, args.top + 4)) or "| (none) | | | |")
    return tables


if __name__ == "__main__":
    main()
