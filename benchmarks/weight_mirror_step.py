"""Full training step of resnet18 under weight mirrors (Akrout et al. 2019) against plain autograd.

    python benchmarks/weight_mirror_step.py            # CPU, 64x64, batch 32, 2 threads, 21 interleaved rounds
    python benchmarks/weight_mirror_step.py --quick    # 7 rounds (under ~3 minutes on 2 quiet cores)

Each variant is its own model copy (same starting weights) stepping with SGD bound to the rule's hooks. ``fa`` is the
floor (backward through a stored B, no mirror phase); the weight_mirror rows add the mirror phase: per iteration
and layer, ``samples`` noise draws of one kernel-sized patch and two products of samples x n_out x fan_in
multiply-adds (2 samples x 11.7M for resnet18), whatever the training batch. The defaults run the phase after each
of the first 40 steps (the warm-up: the "every step" row's cost) and after every 8th step from then on: their row
times that steady state (``warmup_steps`` 0, the same phases after the warm-up), over 8 steps per timed call.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from variant_copies import arguments, run  # noqa: E402


def mirror(**options) -> dict:
    return {"feedback": {"rule": "weight_mirror", "options": options}}


VARIANTS: dict[str, tuple] = {  # (spec, reference[, steps per timed call: the mirror period])
    "plain autograd": (None, "plain autograd"),
    "fa (no mirror phase)": ({"feedback": {"rule": "fa"}}, "plain autograd"),
    "weight_mirror defaults (64 draws every 8 steps, after the warm-up)": (mirror(warmup_steps=0), "plain autograd", 8),
    "weight_mirror 64 draws every step (the warm-up's steps)": (mirror(mirror_every=1), "plain autograd"),
    "weight_mirror 128 draws every 8 steps, after the warm-up": (
        mirror(samples=128, warmup_steps=0),
        "plain autograd",
        8,
    ),
    "weight_mirror 32 draws every step (the former default)": (mirror(samples=32, mirror_every=1), "plain autograd"),
    "weight_mirror 128 draws every 4 steps (the former draws per step)": (
        mirror(samples=128, mirror_every=4, warmup_steps=0),
        "plain autograd",
        4,
    ),
}


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__, reps=21, quick_reps=7).parse_args(argv)
    return run(args, VARIANTS, "weight mirror step")


if __name__ == "__main__":
    main()
