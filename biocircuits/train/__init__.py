"""Training: the loop, checkpoints, logging, optimiser/schedule and DDP helpers."""

from .checkpoint import load_checkpoint, save_checkpoint
from .trainer import Trainer, run_experiment

__all__ = ["Trainer", "load_checkpoint", "run_experiment", "save_checkpoint"]
