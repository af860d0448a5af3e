"""Rebuild a finished run's model (with its constraints and trained weights) from its directory."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.data.registry import DataBundle, build_data
from biocircuits.errors import ConfigError
from biocircuits.models.registry import build_model

from .checkpoint import load_checkpoint
from .run_folder import RunFolder


def load_run(run_dir: str | Path, with_data: bool = True) -> tuple[Experiment, nn.Module, DataBundle | None]:
    """(experiment, trained model on the CPU in eval mode, data or None) of the run in ``run_dir``."""
    folder = RunFolder(run_dir)
    if not folder.is_run():
        raise ConfigError(
            "not a run directory (no config.yaml)",
            given=str(folder.path),
            suggestion="pass a directory written by 'biocircuits run'",
        )
    exp = Experiment.from_dict(folder.read_config(), file=str(folder.config))
    ckpt = load_checkpoint(folder.checkpoint)
    data = build_data(exp.data) if with_data else None
    shape = tuple(ckpt["input_shape"])
    classes = ckpt["num_classes"]
    torch.manual_seed(exp.train.seed)
    model = build_model(exp.model.name, shape, classes, exp.model.kwargs)
    bc.apply(model, exp.resolved_constraints())
    model.load_state_dict(ckpt["model"])
    return exp, model.eval(), data
