"""The check-pathway figure (biocircuits/app/pathway_plots.py): every held pattern is visible, whatever its scale."""

from types import SimpleNamespace

import pytest

from biocircuits.app.pathway_plots import pattern_scaled, plot_report


def report(scales):
    analytic = [[2.0 * s, -1.0 * s, 0.5 * s] for s in scales]
    simulated = [[1.8 * s, -1.1 * s, 0.4 * s] for s in scales]
    patterns = [SimpleNamespace(cosine=0.99) for _ in scales]
    return SimpleNamespace(
        simulated=simulated, analytic=analytic, patterns=patterns, mode="spiking", dale=False, duration_s=0.5
    )


def test_each_pattern_is_scaled_by_its_own_peak():
    rep = report([1e-6, 1.0, 0.0])
    scaled = pattern_scaled(rep)
    for ana, sim in scaled[:2]:  # max |B^T e| = 2 s: both patterns span the same range, 1e-6 or not
        assert ana == pytest.approx([1.0, -0.5, 0.25]) and sim == pytest.approx([0.9, -0.55, 0.2])
    assert scaled[2] == ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])  # a zero pattern stays zero, no division by 0


def test_plot_axes_span_the_scaled_data(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import biocircuits.app.pathway_plots as plots

    kept = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: kept.setdefault("ax", fig.axes[0]) and path)
    plot_report(report([1e-6, 3.0]), tmp_path / "p.png")
    pad = 0.05 * (1.0 - -0.55)  # scaled data in [-0.55, 1.0] (both patterns), padded by 5% of the range
    assert kept["ax"].get_xlim() == pytest.approx((-0.55 - pad, 1.0 + pad))
    assert kept["ax"].get_ylim() == pytest.approx((-0.55 - pad, 1.0 + pad))
