"""The ``dale`` preset on torchvision networks with signed activations (issue #23 item 5): mobilenet_v3_small
(Hardswish), efficientnet_b0 (SiLU) and convnext_tiny (GELU), 10 classes, batch 2 at 32x32, SGD 0.01 with momentum
0.9, N steps (default 20); prints each step's loss and the audit's violations and effective violations, and exits 1
when a loss is not finite or a violation remains. ``tests/dale/test_signed_activation_models.py`` runs 2 steps.

    python benchmarks/dale_signed_models.py [--steps 20] [--preset dale]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torchvision

import biocircuits as bc

MODELS = ("mobilenet_v3_small", "efficientnet_b0", "convnext_tiny")


def run(name: str, preset: str, steps: int) -> bool:
    """Train ``name`` under ``preset`` for ``steps`` steps; True when every loss is finite and the audit is clean."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    bc.apply(model, preset)
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), model)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    start, losses = time.perf_counter(), []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    report = bc.audit(model, spectra=False)
    finite = all(torch.isfinite(torch.tensor(losses)))
    print(
        f"{name}: {steps} steps in {time.perf_counter() - start:.1f} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
        f"finite {finite}, violations {report.violations}, effective {report.effective_violations}, "
        f"not guaranteed (LayerNorm-centred) {report.not_guaranteed}"
    )
    return finite and report.violations == 0 and report.effective_violations == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--preset", default="dale")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ok = [run(name, args.preset, args.steps) for name in MODELS]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
