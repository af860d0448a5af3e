"""``biocircuits check-pathway RUN_DIR --layer NAME``: take real error vectors from a validation batch through a
trained network's feedback pathway, simulate the layer's pathway in Brian2, print and save the report."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.errors import ConfigError
from biocircuits.feedback.layers import FeedbackLayer
from biocircuits.train.restore import load_run
from biocircuits.train.run_folder import RunFolder


def layer_errors(model: nn.Module, layer: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The error dL/dy at ``layer``'s output for each sample, delivered by the network's own feedback rules
    (shape (samples, out); a conv layer's error is taken at the centre output location)."""
    captured: dict[str, Tensor] = {}

    def hook(mod: nn.Module, args: tuple, out: Tensor) -> Tensor:
        captured["y"] = out
        return out.clone()

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y, reduction="sum")
            (delta,) = torch.autograd.grad(loss, captured["y"])
    finally:
        handle.remove()
    if delta.dim() > 2:
        centre = tuple(s // 2 for s in delta.shape[2:])
        delta = delta[(slice(None), slice(None), *centre)]
    return delta.detach()


def check_run(run_dir: str | Path, layer_name: str, mode: str = "spiking", patterns: int = 4,
              duration: float | None = None, dale: bool = False):
    """Check ``layer_name`` of the run in ``run_dir``; writes ``pathway_<layer>_<mode>.json`` and ``.png``."""
    from biocircuits.bridges.brian2 import check_pathway  # needs the optional Brian2 (the ``spiking`` extra)
    folder = RunFolder(run_dir)
    _, model, data = load_run(folder.path)
    modules = dict(model.named_modules())
    layer = modules.get(layer_name)
    if not isinstance(layer, FeedbackLayer):
        names = [n for n, m in modules.items() if isinstance(m, FeedbackLayer)]
        raise ConfigError("no converted layer of that name in the run's model", key="--layer", given=layer_name,
                          suggestion="layers: " + ", ".join(difflib.get_close_matches(layer_name, names, 5, 0.0)))
    xs, ys = zip(*(data.val[i] for i in range(min(patterns, len(data.val)))), strict=True)
    errors = layer_errors(model, layer, torch.stack(xs), torch.as_tensor(ys))
    report = check_pathway(layer, errors, mode, dale=dale, duration=duration)
    stem = folder.pathway(layer_name, mode, dale)
    stem.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    plot_report(report, stem.with_suffix(".png"), title=f"{folder.name}: {layer_name}")
    return report


def plot_report(report, path: Path, title: str = "") -> Path:
    """Simulated against analytic B^T e, one colour per error pattern, with the identity line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo = hi = 0.0
    for i, (sim, ana, res) in enumerate(zip(report.simulated, report.analytic, report.patterns, strict=True)):
        ax.scatter(ana, sim, s=10, alpha=0.7, label=f"pattern {i}: cos {res.cosine:.3f}")
        lo, hi = min(lo, min(ana), min(sim)), max(hi, max(ana), max(sim))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="identity")
    ax.set(xlabel="analytic feedback signal B^T e (a.u.)", ylabel="simulated signal, rescaled (a.u.)",
           title=f"{title}\n{report.mode}{' + Dale' if report.dale else ''}, {report.duration_s:g} s per pattern")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
