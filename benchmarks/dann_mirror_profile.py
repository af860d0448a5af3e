"""Op tables of DANN's and the weight mirror's training step (``torch.profiler``), variant against variant.

    python benchmarks/dann_mirror_profile.py                    # resnet18 64x64 batch 32, 1 thread, 3 steps each
    python benchmarks/dann_mirror_profile.py --quick            # 1 profiled step each

Prints, per op, the self CPU time per step and the calls per step of every variant (the calls do not depend on the
machine's load; the times do), largest first, as a Markdown table. docs/profiles.md summarises it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from variant_copies import arguments, build_step  # noqa: E402

from biocircuits.models import build_model  # noqa: E402

DANN = {"architecture": "dann"}
VARIANTS: dict[str, dict | None] = {
    "plain": None,
    "dann+bp": {"feedback": {"rule": "bp"}, "dale": DANN},
    "sign_symmetry": {"feedback": {"rule": "sign_symmetry"}},
    "dann+ss centred": {
        "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "weight_rms", "centre": True}},
        "dale": DANN,
    },
    "dann divisive+ss": {"feedback": {"rule": "sign_symmetry"}, "dale": {**DANN, "dann": {"divisive": True}}},
    "weight_mirror": {"feedback": {"rule": "weight_mirror"}},
}


def op_table(step, steps: int) -> dict[str, tuple[float, float]]:
    """{op: (self CPU ms per step, calls per step)} over ``steps`` profiled steps."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return {e.key: (e.self_cpu_time_total / 1e3 / steps, e.count / steps) for e in prof.key_averages()}


def main(argv: list[str] | None = None) -> dict:
    p = arguments(__doc__, reps=3, quick_reps=1)
    p.add_argument("--rows", type=int, default=30)
    p.set_defaults(threads=1)
    args = p.parse_args(argv)
    steps = 1 if args.quick else args.reps
    names = [n for n in VARIANTS if not args.only or any(t in n for t in args.only)]
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        torch.manual_seed(0)
        base = build_model(args.model, (3, args.size, args.size), 1000, {})
        tables = {}
        for name in names:
            step = build_step(base, args, VARIANTS[name])
            for _ in range(2):
                step()
            tables[name] = op_table(step, steps)
    finally:
        torch.set_num_threads(threads)
    ops = sorted(set().union(*tables.values()), key=lambda k: -max(t.get(k, (0.0, 0.0))[0] for t in tables.values()))
    print(f"| op | {' | '.join(names)} |")
    print(f"| --- |{' ---: |' * len(names)}")
    print(f"| total self ms | {' | '.join(f'{sum(v[0] for v in tables[n].values()):.1f}' for n in names)} |")
    for op in ops[: args.rows]:
        cells = [tables[n].get(op, (0.0, 0.0)) for n in names]
        print(f"| `{op[:48]}` | {' | '.join(f'{ms:.1f} ms, {calls:g}x' for ms, calls in cells)} |")
    return tables


if __name__ == "__main__":
    main()
