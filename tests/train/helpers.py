"""Helpers for runner tests: small experiments and generated datasets on disk."""

from __future__ import annotations

import gzip  # noqa: F401
import os
import signal
from pathlib import Path

import numpy as np
from PIL import Image

import biocircuits.config.experiment as ex
from biocircuits.phases.step import PhaseCallback


def tiny_experiment(tmp: Path, **train) -> ex.Experiment:
    """An MLP on digits with a few steps: fast, deterministic on the CPU."""
    base = {
        "name": "tiny",
        "constraints": "sign_symmetry.yaml",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "kwargs": {"hidden": [32]}},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"name": "cosine", "warmup_epochs": 0.1},
        "train": {
            "steps": 30,
            "batch_size": 32,
            "seed": 0,
            "deterministic": True,
            "log_every": 5,
            "eval_every": 10,
            **train,
        },
        "output": str(tmp),
    }
    return ex.Experiment.from_dict(base)


def write_imagefolder(root: Path, classes: int = 3, per_class: int = 4, size: int = 24) -> Path:
    """ImageNet layout of tiny random JPEGs: root/{train,val}/class_k/img_i.JPEG."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img_{i}.JPEG", quality=85)
    return root


class Kill(PhaseCallback):
    """Sends this process SIGTERM at the end of optimiser step ``at`` (the runner then checkpoints and stops)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_update_end(self, ctx) -> None:
        if ctx.step == self.at - 1:
            os.kill(os.getpid(), signal.SIGTERM)
