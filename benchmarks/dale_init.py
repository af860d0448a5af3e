"""Deep Dale networks at initialisation (docs/results.md, "Deep Dale networks"): the measurements behind the deep-Dale
table, which itself comes from ``biocircuits sweep experiments/sweeps/dale_deep.yaml`` (and
``dale_deep_ablations.yaml``). The variants are those sweep files' variants, by name.

    python benchmarks/dale_init.py --rank                      # participation ratio of the block outputs at init
    python benchmarks/dale_init.py --grad-ratio                # each layer's gradient norm at init over DANN bp's
    python benchmarks/dale_init.py --rank --variants "bp,Dale_old_bp,Dale_new_bp"

``--rank``: PR = (sum l)^2 / sum l^2 of the channel covariance of ResNet-18's block outputs (the collapse
measurement: ~1 when every channel carries the same signal). ``--grad-ratio``: ||grad W|| under a variant over
||grad W|| under ``DANN_bp`` (the DANN + sign symmetry finding: how the error grows on its way down).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

import torch

from biocircuits.app.sweep import plan
from biocircuits.config.constraints import Constraints
from biocircuits.config.experiment import Experiment

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = [ROOT / "experiments" / "sweeps" / name for name in ("dale_deep.yaml", "dale_deep_ablations.yaml")]
GRAD_DEFAULT = ["DANN_sign_symmetry_paper", "DANN_sign_symmetry_centred_paper", "DANN_sign_symmetry_centred"]


@functools.lru_cache(maxsize=1)
def variants() -> dict[str, tuple[Experiment, Constraints]]:
    """{variant: (its experiment at the first seed, its resolved constraint spec)} of the deep-Dale sweep files."""
    out = {}
    for path in SWEEPS:
        for trial in plan(path)[2]:
            out.setdefault(trial.variant, (trial.experiment, trial.experiment.resolved_constraints()))
    return out


def participation_ratios(spec: Constraints | dict[str, Any], n: int = 256) -> dict[str, float]:
    """PR = (sum l)^2 / sum l^2 of the channel covariance (spatially pooled) of ResNet-18's block outputs and
    logits at initialisation, on ``n`` training digits: ~1 when every channel carries the same signal."""
    import biocircuits as bc
    from biocircuits.models import build_model

    x, _, shape, classes = _digits(n)
    torch.manual_seed(0)
    model = bc.apply(build_model("resnet18", shape, classes, {}), spec)
    names = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] + ["fc"]
    got: dict[str, float] = {}

    def pr(name: str) -> Any:
        def hook(module: Any, args: Any, out: torch.Tensor) -> None:
            f = out.detach().flatten(2).mean(2) if out.dim() == 4 else out.detach()
            f = f - f.mean(0)
            lam = torch.linalg.eigvalsh(f.T @ f / len(f)).clamp(min=0)
            got[name] = float(lam.sum() ** 2 / (lam**2).sum())

        return hook

    for name in names:
        model.get_submodule(name).register_forward_hook(pr(name))
    with torch.no_grad():
        model(x)
    return got


def gradient_ratios(
    spec: Constraints | dict[str, Any], reference: Constraints | dict[str, Any], n: int = 128
) -> dict[str, float]:
    """||grad W|| under ``spec`` over ||grad W|| under ``reference`` (same init, one batch of ``n`` training digits)
    for each weight layer of ResNet-18 at initialisation: how the error grows or shrinks on its way down."""
    import torch.nn.functional as F

    import biocircuits as bc
    from biocircuits.core.layers import trainable_weight
    from biocircuits.models import build_model

    x, labels, shape, classes = _digits(n)

    def norms(constraints: Constraints | dict[str, Any]) -> dict[str, float]:
        torch.manual_seed(0)
        model = bc.apply(build_model("resnet18", shape, classes, {}), constraints)
        F.cross_entropy(model(x), labels).backward()
        return {
            name: float(trainable_weight(layer).grad.norm())
            for name, layer in model.named_modules()
            if isinstance(layer, torch.nn.Conv2d | torch.nn.Linear)
        }

    got, ref = norms(spec), norms(reference)
    return {name: got[name] / ref[name] for name in ref}


@functools.lru_cache(maxsize=2)
def _digits(n: int) -> tuple[torch.Tensor, torch.Tensor, tuple, int]:
    """The first ``n`` training images of the sweeps' recipe and their labels, its input shape and class count."""
    from biocircuits.data import build_data

    data = build_data(Experiment.from_yaml(ROOT / "experiments" / "paper_mnist5k_resnet18.yaml").data)
    items = [data.train[i] for i in range(n)]
    return (
        torch.stack([x for x, _ in items]),
        torch.tensor([int(y) for _, y in items]),
        data.input_shape,
        data.num_classes,
    )


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rank", action="store_true", help="print the block outputs' participation ratio at init")
    p.add_argument("--grad-ratio", action="store_true", help="print each layer's gradient norm at init over DANN_bp's")
    p.add_argument("--variants", help="comma-separated variant names of the deep-Dale sweep files")
    args = p.parse_args(argv)
    specs = variants()
    names = [s.strip() for s in args.variants.split(",")] if args.variants else None
    out: dict[str, dict[str, float]] = {}
    if args.rank:
        for label in names or [v for v in specs if "DANN" not in v]:
            out[label] = participation_ratios(specs[label][1])
            print(f"{label:<28}", " ".join(f"{k}:{v:.1f}" for k, v in out[label].items()))
    if args.grad_ratio:
        labels = names or GRAD_DEFAULT
        ratios = {label: gradient_ratios(specs[label][1], specs["DANN_bp"][1]) for label in labels}
        width = max(16, *(len(label) + 2 for label in labels))
        print(f"{'layer':<24}" + "".join(f"{label:>{width}}" for label in labels))
        for layer in ratios[labels[0]]:
            print(f"{layer:<24}" + "".join(f"{ratios[label][layer]:>{width}.3g}" for label in labels))
        out.update(ratios)
    return out


if __name__ == "__main__":
    main()
