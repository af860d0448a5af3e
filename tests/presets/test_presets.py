"""Preset lookup (biocircuits/presets and config.loading.resolve_path): the documented order, and the shipped
folders are the top-level ones in a checkout."""

from pathlib import Path

import pytest

from biocircuits.config import loading
from biocircuits.config.loading import resolve_path
from biocircuits.presets import preset_names, presets_root

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_reads_the_top_level_folders():
    assert presets_root() == ROOT
    assert preset_names("constraints") == sorted(p.stem for p in (ROOT / "constraints").glob("*.yaml"))
    assert "quickstart" in preset_names("experiments")
    with pytest.raises(ValueError):
        preset_names("runs")


def test_lookup_order_beside_then_cwd_then_presets(tmp_path, monkeypatch):
    beside, cwd, presets = tmp_path / "beside", tmp_path / "cwd", tmp_path / "presets"
    for folder in (beside, cwd, presets / "constraints"):
        folder.mkdir(parents=True)
        (folder / "spec.yaml").write_text("feedback: {rule: fa}\n")
    monkeypatch.setattr(loading, "PACKAGE_ROOT", presets)
    monkeypatch.chdir(cwd)
    assert resolve_path("spec.yaml", beside, "constraints") == beside / "spec.yaml"
    assert resolve_path("spec", beside, "constraints") == beside / "spec.yaml"  # the suffix may be left out
    assert resolve_path("spec.yaml", None, "constraints") == cwd / "spec.yaml"
    (cwd / "spec.yaml").unlink()
    assert resolve_path("spec.yaml", None, "constraints") == presets / "constraints" / "spec.yaml"
    assert resolve_path("constraints/spec.yaml", None, "constraints") == presets / "constraints" / "spec.yaml"
    assert resolve_path("missing.yaml", None, "constraints") is None
    absolute = beside / "spec.yaml"
    assert resolve_path(absolute, cwd, "constraints") == absolute
