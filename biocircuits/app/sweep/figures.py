"""The sweep's figures: the summarised metric per variant (each seed a dot, the mean with its 95% t-interval), and
validation learning curves per variant (the mean over seeds at each evaluated step, with a band of one sd)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from biocircuits.core.atomic import atomic_write

from .results import val_rows

CURVE_KEYS = {
    "val_acc1": "acc1",
    "best_val_acc1": "acc1",
    "val_acc5": "acc5",
    "val_loss": "loss",
    "best_val_loss": "loss",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)
    return path


def metric_figure(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> Path:
    """Dots: each finished trial's ``summary['metric']``; bar: the variant's mean and 95% t-interval."""
    plt, metric = _pyplot(), summary["metric"]
    labels = list(summary["variants"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 1.5), 3.6))
    for i, label in enumerate(labels):
        v = summary["variants"][label]
        xs = [
            r[metric]
            for r in rows
            if str(r["variant"]) == label
            and r["status"] == "finished"
            and isinstance(r.get(metric), int | float)
            and math.isfinite(r[metric])
        ]
        ax.scatter([i] * len(xs), xs, s=14, color="0.5", zorder=2)
        if v["mean"] is not None:
            low, high = v["ci_low"], v["ci_high"]
            err = [[v["mean"] - low], [high - v["mean"]]] if low is not None else None
            ax.errorbar([i], [v["mean"]], yerr=err, fmt="o", color="C0", capsize=4, zorder=3)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean and 95% t-interval per variant (n = seeds finished)", fontsize=9)
    return _save(plt, fig, path)


def curves_figure(rows: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Per variant: the validation ``metric`` (acc1, acc5 or loss) against the step, mean over its seeds at each
    step with a band of +- one sd (where more than one seed reached the step)."""
    plt, key = _pyplot(), CURVE_KEYS.get(metric, "acc1")
    by_variant: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        steps = by_variant.setdefault(str(row["variant"]), {})
        for val in val_rows(Path(row["run_dir"])):
            if isinstance(val.get(key), int | float) and math.isfinite(val[key]):
                steps.setdefault(int(val["step"]), []).append(float(val[key]))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, (label, steps) in enumerate(by_variant.items()):
        xs = sorted(steps)
        if not xs:
            continue
        means = [sum(steps[s]) / len(steps[s]) for s in xs]
        sds = [
            math.sqrt(sum((x - m) ** 2 for x in steps[s]) / (len(steps[s]) - 1)) if len(steps[s]) > 1 else 0.0
            for s, m in zip(xs, means, strict=True)
        ]
        ax.plot(xs, means, color=f"C{i % 10}", label=label)
        ax.fill_between(
            xs,
            [m - d for m, d in zip(means, sds, strict=True)],
            [m + d for m, d in zip(means, sds, strict=True)],
            color=f"C{i % 10}",
            alpha=0.2,
        )
    ax.set_xlabel("step")
    ax.set_ylabel(f"val {key}")
    ax.set_title("validation curves: mean over seeds +- 1 sd", fontsize=9)
    if by_variant:
        ax.legend(fontsize=7)
    return _save(plt, fig, path)


def write_figures(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[Path]:
    """``plots/metric_by_variant.png`` and ``plots/learning_curves.png`` in ``out``."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    return [
        metric_figure(rows, summary, plots / "metric_by_variant.png"),
        curves_figure(rows, summary["metric"], plots / "learning_curves.png"),
    ]
