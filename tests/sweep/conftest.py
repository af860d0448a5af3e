"""Tiny sweep files for the sweep tests: digits + a small MLP, a few steps."""

from __future__ import annotations

from pathlib import Path

import pytest

EXPERIMENT = (
    "name: tiny\nconstraints: bp.yaml\ndata: {name: digits}\nmodel: {name: mlp, kwargs: {hidden: [8]}}\n"
    "train: {steps: 6, batch_size: 32, eval_every: 3, checkpoint_every: 3, log_every: 3, "
    "probe_every: null, plots: false, progress: false}\n"
)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A folder with ``exp.yaml`` (the tiny experiment); tests write their sweep files beside it."""
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    return tmp_path
