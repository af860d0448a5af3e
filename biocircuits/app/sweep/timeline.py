"""Where a trial's time goes: epoch-second timestamps of a trial's stages, kept in its ``trial.json`` under
``timeline`` (the latest attempt's) so that a sweep's per-trial overhead can be read off its folder
(``benchmarks/sweep_throughput.py --breakdown``) rather than guessed.

Stages, in order: ``worker_started_at`` (the engine's worker process was created; one worker runs several trials
when Ray Tune reuses it), ``imported_at`` (that process finished importing torch and biocircuits' trial module),
``entered_at`` (the trial's function was called), ``built_at`` (data, model, optimiser and run folder ready: the
run's ``on_train_start``), ``first_step_at`` / ``last_step_at`` (the end of the first and of the last optimiser
step), ``trained_at`` (final evaluation and checkpoint written: ``on_train_end``). Counts: ``steps`` taken,
``evaluations``, ``checkpoints`` (written at distinct steps) in this attempt and, for a trial that reports to the
engine, ``reports`` and ``report_s`` (seconds spent waiting in the engine's report). Also ``worker_pid`` and
``torch_threads`` (the torch threads the trial really ran with). ``finished_at`` stays at the top of
``trial.json``."""

from __future__ import annotations

import os
import time
from typing import Any

from biocircuits.train.callback import Callback


def process_started_at(pid: int | None = None) -> float | None:
    """When process ``pid`` (this one by default) was created, in epoch seconds; None where ``psutil`` (a Ray
    dependency) is missing."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process(pid or os.getpid()).create_time()


class TrialTimeline(Callback):
    """Stamps the stages of one attempt of a trial into ``self.times`` (see the module docstring); the trial
    writes them to ``trial.json``. Keeps nothing in the checkpoint: a resumed attempt has a timeline of its own."""

    def __init__(self, imported_at: float | None, entered_at: float) -> None:
        self.times: dict[str, Any] = {
            "worker_pid": os.getpid(),
            "worker_started_at": process_started_at(),
            "imported_at": imported_at,
            "entered_at": entered_at,
            "steps": 0,
            "evaluations": 0,
            "checkpoints": 0,
        }
        self._saved_step: int | None = None

    def on_train_start(self, trainer: Any) -> None:
        import torch

        self.times["built_at"] = time.time()
        self.times["torch_threads"] = torch.get_num_threads()  # what the trial really runs with
        self._saved_step = trainer.saved_step

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        now = time.time()
        self.times.setdefault("first_step_at", now)
        self.times["last_step_at"] = now
        self.times["steps"] += 1
        self._count_checkpoint(trainer)

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self.times["evaluations"] += 1

    def on_train_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        self.times["trained_at"] = time.time()
        self._count_checkpoint(trainer)

    def _count_checkpoint(self, trainer: Any) -> None:
        """A checkpoint was written since the last look when the trainer's saved step moved."""
        saved = getattr(trainer, "saved_step", None)
        if saved is not None and saved != self._saved_step:
            self.times["checkpoints"] += 1
            self._saved_step = saved
