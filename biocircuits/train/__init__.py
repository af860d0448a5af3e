"""Training: the loop and its callbacks, checkpoints, logging, optimiser/schedule and DDP helpers."""

from .callback import Callback
from .callbacks import Checkpoints, EarlyStopping, Evaluation, MetricsLog, Probes, Progress
from .checkpoint import load_checkpoint, save_checkpoint
from .trainer import Trainer, run_experiment

__all__ = [
    "Callback",
    "Checkpoints",
    "EarlyStopping",
    "Evaluation",
    "MetricsLog",
    "Probes",
    "Progress",
    "Trainer",
    "load_checkpoint",
    "run_experiment",
    "save_checkpoint",
]
