"""``biocircuits plot``: PNGs of runs — learning curves (runs overlaid), per-layer alignment angles (lines and
a layer-by-step heatmap), and, when Dale is on, the audit and each layer's singular-value spectrum. Reads only
the files a run wrote (``metrics.jsonl``, ``audit.json``). matplotlib (Agg backend) is imported by the first plot
drawn, not with the module: ``biocircuits run`` imports this module for its plot callback."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch

from biocircuits.core.atomic import atomic_write
from biocircuits.dale.audit import spread_and_entropy
from biocircuits.errors import ConfigError
from biocircuits.train.callback import Callback
from biocircuits.train.run_folder import RunFolder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# the probe's angles; step_update_angle (the update a layer received at that training step vs backprop's on the same
# batch: what phases settings do to it) gets a panel when the run logged it
ANGLES = ("weight_angle", "error_angle", "update_angle", "step_update_angle")


@functools.cache
def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` with the Agg backend (files only, no window), imported on the first call."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> None:
    """Write ``fig`` to ``path`` as a PNG atomically (a reader never sees half a plot) and close it."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        pyplot().close(fig)


def _label(run: Path) -> str:
    return run.name


def plot_curves(runs: Sequence[Path], out: Path) -> Path:
    """Train loss and validation top-1 accuracy against optimiser steps, one line per run."""
    fig, (ax_loss, ax_acc) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    for run in runs:
        rows = RunFolder(run).read_metrics()
        train = [r for r in rows if r["kind"] == "train"]
        val = [r for r in rows if r["kind"] == "val"]
        (line,) = ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label=_label(run))
        ax_acc.plot([r["step"] for r in val], [r["acc1"] for r in val], "o-", color=line.get_color(), label=_label(run))
    ax_loss.set(xlabel="optimiser step", ylabel="training loss (cross-entropy, nats)", title="Training loss")
    ax_acc.set(xlabel="optimiser step", ylabel="validation top-1 accuracy (%)", title="Validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "curves.png"
    _save(fig, path)
    return path


def _probe_rows(run: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{angle: {layer: [(step, degrees), ...]}} from a run's probe rows."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {a: defaultdict(list) for a in ANGLES}
    for r in RunFolder(run).read_metrics():
        if r["kind"] == "probe":
            for a in ANGLES:
                if r.get(a) is not None:
                    out[a][r["layer"]].append((r["step"], r[a]))
    return out


def plot_angles(run: Path, out: Path) -> list[Path]:
    """Per-layer angle trajectories (one panel per angle) and a layer-by-step heatmap of the error angle."""
    rows = _probe_rows(run)
    if not any(rows[a] for a in ANGLES):
        return []
    shown = [a for a in ANGLES if a != "step_update_angle" or rows[a]]
    fig, axes = pyplot().subplots(1, len(shown), figsize=(5 * len(shown), 4.2), sharey=True)
    for ax, a in zip(axes, shown, strict=True):
        for layer, pts in rows[a].items():
            steps, deg = zip(*pts, strict=True)
            ax.plot(steps, deg, label=layer)
        ax.axhline(90, color="grey", ls="--", lw=1)
        ax.set(xlabel="optimiser step", title=a.replace("_", " "), ylim=(0, 180))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("angle to backprop (degrees)")
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{_label(run)}: alignment with backprop")
    fig.tight_layout()
    lines = out / f"angles_{_label(run)}.png"
    _save(fig, lines)
    layers = list(rows["error_angle"])
    steps = sorted({s for pts in rows["error_angle"].values() for s, _ in pts})
    grid = np.full((len(layers), len(steps)), np.nan)
    for i, layer in enumerate(layers):
        for s, v in rows["error_angle"][layer]:
            grid[i, steps.index(s)] = v
    fig, ax = pyplot().subplots(figsize=(10, 0.35 * len(layers) + 2))
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=180, interpolation="nearest")
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ticks = np.linspace(0, len(steps) - 1, min(8, len(steps))).astype(int)
    ax.set_xticks(ticks, [steps[t] for t in ticks])
    ax.set(xlabel="optimiser step", ylabel="layer", title=f"{_label(run)}: error angle to backprop")
    fig.colorbar(im, ax=ax, label="error angle (degrees)")
    fig.tight_layout()
    heat = out / f"error_angle_heatmap_{_label(run)}.png"
    _save(fig, heat)
    return [lines, heat]


def plot_dale(run: Path, out: Path) -> list[Path]:
    """When the run used Dale (it wrote ``audit.json``): E/I counts and violations per layer, and each layer's
    singular values."""
    audit = RunFolder(run).read_audit()
    if not audit:
        return []
    rows = audit["layers"]
    fig, (ax_ei, ax_sv) = pyplot().subplots(1, 2, figsize=(13, 4.5))
    x = np.arange(len(rows))
    ax_ei.bar(x - 0.2, [r["excitatory"] for r in rows], 0.4, label="excitatory units", color="tab:red")
    ax_ei.bar(x + 0.2, [r["inhibitory"] for r in rows], 0.4, label="inhibitory units", color="tab:blue")
    ax_ei.set_xticks(x, [r["name"] for r in rows], rotation=60, ha="right", fontsize=7)
    ax_ei.set(ylabel="presynaptic units (count)", title=f"Dale audit: {audit['violations']} violating weights")
    ax_ei.legend(fontsize=8)
    for r in rows:
        if r["singular_values"] is None:
            continue
        sv = torch.tensor(r["singular_values"], dtype=torch.float64)
        _, entropy = spread_and_entropy(sv)
        sv = sv.numpy()
        ax_sv.plot(np.arange(1, len(sv) + 1) / len(sv), sv / sv.max(), label=f"{r['name']} (H={entropy:.2f})")
    ax_sv.set(
        xlabel="singular value rank (fraction of all)",
        ylabel="singular value / largest",
        title="Weight spectra (normalised SVD entropy H)",
        yscale="log",
    )
    if ax_sv.lines:
        ax_sv.legend(fontsize=6)
    else:  # the audit recorded no spectrum (every layer skipped): say so instead of an empty legend
        ax_sv.text(0.5, 0.5, "no layer's spectrum was recorded", ha="center", va="center", transform=ax_sv.transAxes)
    ax_sv.grid(alpha=0.3)
    fig.tight_layout()
    path = out / f"dale_{_label(run)}.png"
    _save(fig, path)
    return [path]


def plot_runs(runs: Sequence[str | Path], output: str | Path | None = None) -> list[Path]:
    """Write every plot that the runs' files support; returns the PNG paths."""
    runs = [Path(r) for r in runs]
    missing = [str(r) for r in runs if not RunFolder(r).metrics.exists()]
    if missing:
        raise ConfigError(
            "not a run directory (no metrics.jsonl)",
            given=", ".join(missing),
            suggestion="pass directories written by 'biocircuits run'",
        )
    out = Path(output) if output else RunFolder(runs[0]).plots
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_curves(runs, out)]
    for run in runs:
        paths += plot_angles(run, out)
        paths += plot_dale(run, out)
    return paths


class PlotRun(Callback):
    """Writes the run's plots ([`plot_runs`][biocircuits.app.plots.plot_runs]) into its ``plots/`` when it finishes (not
    when a signal stops it); rank 0 only. The command adds it when ``train.plots`` is on."""

    def on_train_end(self, trainer, summary) -> None:  # noqa: ANN001
        if not summary.get("interrupted") and trainer.dist.is_main:
            plot_runs([trainer.folder.path])
