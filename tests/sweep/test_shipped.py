"""What ships with sweeps: the example sweep files validate (every trial), and the SLURM template is valid bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from biocircuits.app.sweep import plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "experiments" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_example_sweep_files_validate(path):
    spec, _, trials = plan(path)
    if spec.search is not None and spec.search.algorithm == "optuna":  # samples chosen as it runs: none planned
        assert trials == [] and spec.search.num_samples >= 1
        return
    assert trials and len(trials) == len({t.id for t in trials})
    assert spec.baseline is None or spec.baseline in {t.variant for t in trials}


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_slurm_template_is_valid_bash():
    script = ROOT / "docs" / "slurm" / "ray_sweep.sbatch"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    assert "ray start --head" in text and "biocircuits sweep" in text and "--address" in text
