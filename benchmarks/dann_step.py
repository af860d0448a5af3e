"""Full training step of resnet18 under DANN (``dale.architecture: dann``) against the same network without it.

    python benchmarks/dann_step.py                 # CPU, 64x64, batch 32, 2 threads, 21 interleaved rounds
    python benchmarks/dann_step.py --quick         # 7 rounds (under ~3 minutes on 2 quiet cores)

Each variant is its own model copy (same starting weights) stepping with SGD (momentum, weight decay, the
optimiser bound to the DANN hooks). DANN + bp is timed against plain autograd, the sign-symmetry variants against a
sign_symmetry copy without DANN. DANN's own work per step: W = W_EE - W_EI W_IE for every layer (one product of
n_e n_i d multiply-adds in forward, two in backward; ``biocircuits/dale/inhibited.py``), the SGD update of W_IE and
W_EI, the corrected updates and the projection of every weight onto >= 0; divisive inhibition adds a conv with the
n_i interneurons per layer and its backward.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from variant_copies import arguments, run  # noqa: E402

DANN = {"architecture": "dann"}
CENTRED = {"rule": "sign_symmetry", "options": {"magnitude": "weight_rms", "centre": True}}
VARIANTS: dict[str, tuple[dict | None, str]] = {
    "plain autograd": (None, "plain autograd"),
    "dann + bp": ({"feedback": {"rule": "bp"}, "dale": DANN}, "plain autograd"),
    "sign_symmetry": ({"feedback": {"rule": "sign_symmetry"}}, "plain autograd"),
    "dann + sign_symmetry": ({"feedback": {"rule": "sign_symmetry"}, "dale": DANN}, "sign_symmetry"),
    "dann + sign_symmetry centred (preset)": ({"feedback": CENTRED, "dale": DANN}, "sign_symmetry"),
    "dann divisive + sign_symmetry": (
        {"feedback": {"rule": "sign_symmetry"}, "dale": {**DANN, "dann": {"divisive": True}}},
        "sign_symmetry",
    ),
}


def main(argv: list[str] | None = None) -> dict:
    args = arguments(__doc__, reps=21, quick_reps=7).parse_args(argv)
    return run(args, VARIANTS, "DANN step")


if __name__ == "__main__":
    main()
