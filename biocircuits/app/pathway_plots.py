"""The figures of ``biocircuits check-pathway``: held patterns against B^T e, the frequency response against the
analytic low-pass, and a stream's per-bin tracking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biocircuits.core.atomic import atomic_write

__all__ = ["pattern_scaled", "plot_frequency", "plot_report", "plot_tracking"]


def _figure(ncols: int = 1, size: tuple[float, float] = (5.5, 5)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=size)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))  # a reader never sees half a plot
    finally:
        plt.close(fig)
    return path


def pattern_scaled(report: Any) -> list[tuple[list[float], list[float]]]:
    """Each pattern's (analytic, simulated) signals divided by that pattern's max |B^T e|, so that patterns whose
    errors differ by orders of magnitude (a well-classified sample's error is tiny) share one axis; a zero pattern
    is left as it is."""
    scaled = []
    for sim, ana in zip(report.simulated, report.analytic, strict=True):
        peak = max((abs(v) for v in ana), default=0.0) or 1.0
        scaled.append(([v / peak for v in ana], [v / peak for v in sim]))
    return scaled


def plot_report(report: Any, path: Path, title: str = "") -> Path:
    """Simulated against analytic B^T e, one colour per error pattern (each scaled by its own max |B^T e|: every
    pattern visible), with the identity line; the axes span the scaled data."""
    fig, ax = _figure()
    lo = hi = 0.0
    for i, ((ana, sim), res) in enumerate(zip(pattern_scaled(report), report.patterns, strict=True)):
        ax.scatter(ana, sim, s=10, alpha=0.7, label=f"pattern {i}: cos {res.cosine:.3f}")
        lo, hi = min(lo, *ana, *sim), max(hi, *ana, *sim)
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="identity")
    ax.set(
        xlim=(lo - pad, hi + pad),
        ylim=(lo - pad, hi + pad),
        xlabel="analytic feedback signal B^T e / max |B^T e| (per pattern)",
        ylabel="simulated signal, rescaled, / max |B^T e|",
        title=f"{title}\n{report.mode}{' + Dale' if report.dale else ''}, {report.duration_s:g} s per pattern",
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_frequency(points: list, path: Path, title: str = "") -> Path:
    """Gain and phase against frequency (log axis), measured (dots, spike-noise error bars) and analytic."""
    fig, (gain, phase) = _figure(2, (10, 4))
    f = [p.frequency for p in points]
    gain.errorbar(f, [p.gain for p in points], yerr=[p.gain_se for p in points], fmt="o", label="simulated")
    gain.plot(f, [p.gain_analytic for p in points], "-", label="analytic low-pass")
    phase.plot(f, [p.phase_deg for p in points], "o", label="simulated")
    phase.plot(f, [p.phase_analytic_deg for p in points], "-", label="analytic low-pass")
    gain.set(xscale="log", yscale="log", xlabel="frequency (Hz)", ylabel="gain |H(f)|", title=title)
    phase.set(xscale="log", xlabel="frequency (Hz)", ylabel="phase (degrees)")
    for ax in (gain, phase):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_tracking(report: Any, path: Path, title: str = "") -> Path:
    """Per-bin cosine between the readout and B^T e(t), measured and analytic (the low-pass alone)."""
    fig, ax = _figure(1, (7, 4))
    tr = report.tracking
    t = [(i + 0.5) * tr.bin_s for i in range(len(tr.cosine))]
    ax.plot(t, tr.cosine, ".-", label=f"simulated (mean {tr.mean_cosine:.3f})")
    ax.plot(t, tr.cosine_predicted, "-", label=f"analytic low-pass (mean {tr.mean_cosine_predicted:.3f})")
    ax.set(
        xlabel="bin start after settling (s)",
        ylabel="cos(readout, B^T e(t))",
        title=f"{title}\n{report.trace.mode}{' + Dale' if report.trace.dale else ''}, {report.stream} stream",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
