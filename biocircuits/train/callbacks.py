"""The built-in callbacks, each owning its piece of the run: the metrics log (``metrics.jsonl``, ``summary.json``,
``audit.json``), evaluation and checkpoints at their intervals, the alignment probes, the progress bar; and
[`EarlyStopping`][biocircuits.train.callbacks.EarlyStopping], which a user adds."""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import biocircuits as bc
from biocircuits.core.interface import attachment_reports
from biocircuits.errors import ConfigError
from biocircuits.phases.step import PhaseCallback, StepContext
from biocircuits.probes.step import StepProbe

from .callback import Callback
from .log_lines import LogLines
from .logging import dale_audit
from .targets import task_loss

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

WINDOW_KEYS = ("loss_sum", "correct1", "correct5", "samples", "data_s", "compute_s")


class MetricsLog(Callback):
    """``train`` rows every ``train.log_every`` steps (and at the last): loss, top-1/top-5 (%), images/s overall and
    in compute alone, data and compute seconds and the data-wait share data_s / (data_s + compute_s), summed over
    the steps since the previous row; ``attachment`` rows
    (e.g. the mirror phase's iterations and angle) at the same steps; ``val`` rows; at the end ``summary.json`` and,
    under Dale, ``audit.json``."""

    def __init__(self) -> None:
        self.window = dict.fromkeys(WINDOW_KEYS, 0.0)
        self.t0 = time.perf_counter()

    def on_train_start(self, trainer: Trainer) -> None:
        self.window, self.t0 = dict.fromkeys(WINDOW_KEYS, 0.0), time.perf_counter()

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        w = self.window
        w["loss_sum"] += metrics["loss"] * metrics["samples"]
        for key in WINDOW_KEYS[1:]:
            w[key] += metrics[key]
        step = trainer.step
        if step % trainer.exp.train.log_every and step != trainer.total_steps:
            return
        world, n, elapsed = trainer.dist.world, max(w["samples"], 1), time.perf_counter() - self.t0
        trainer.logger.log(
            "train",
            step,
            epoch=metrics["epoch"],
            lr=metrics["lr"],
            wall_s=time.perf_counter() - trainer.start_time,
            loss=w["loss_sum"] / n,
            acc1=100 * w["correct1"] / n,
            acc5=100 * w["correct5"] / n,
            images_per_s=world * w["samples"] / max(elapsed, 1e-9),
            compute_images_per_s=world * w["samples"] / max(w["compute_s"], 1e-9),
            data_s=w["data_s"],
            compute_s=w["compute_s"],
            data_share=w["data_s"] / max(w["data_s"] + w["compute_s"], 1e-12),
        )
        self.on_train_start(trainer)
        for layer, name, figures in attachment_reports(trainer.module):  # e.g. the mirror phase: iterations, angle
            trainer.logger.log("attachment", step, layer=layer, attachment=name, **figures)

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        trainer.logger.log(
            "val",
            trainer.step,
            epoch=trainer.step / trainer.steps_per_epoch,
            loss=metrics["loss"],
            acc1=metrics["acc1"],
            acc5=metrics["acc5"],
        )

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if summary.get("interrupted"):
            return
        trainer.logger.write_json(trainer.folder.summary, summary)
        if trainer.constraints.dale_on and trainer.dist.is_main:
            trainer.logger.write_json(trainer.folder.audit, dale_audit(trainer.module, spectra=trainer.exp.train.plots))


class _AtInterval(Callback):
    """Acts every ``train.<setting>`` steps, or at each epoch's end when that setting is unset."""

    setting = ""

    def act(self, trainer: Trainer) -> None:
        raise NotImplementedError

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        every = getattr(trainer.exp.train, self.setting)
        if every and trainer.step % every == 0:
            self.act(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        if getattr(trainer.exp.train, self.setting) is None:
            self.act(trainer)


class Evaluation(_AtInterval):
    """Evaluate every ``train.eval_every`` steps, or at each epoch's end when it is unset."""

    setting = "eval_every"

    def act(self, trainer: Trainer) -> None:
        trainer.evaluate()


class Probes(Callback, PhaseCallback):
    """Every ``train.probe_every`` steps (rank 0): ``bc.probe``'s weight, error and update angles to exact backprop
    on ``train.probe_batch`` validation samples, and the angle of the update each layer received at that very step
    ([`StepProbe`][biocircuits.probes.step.StepProbe], fed each micro-batch from the forward phase), as ``probe``
    rows."""

    def __init__(self, trainer: Trainer) -> None:
        self.every = trainer.exp.train.probe_every
        self.step_probe = StepProbe(trainer.module, trainer.optimizer, trainer.phased.loss_fn)
        trainer.phased.callbacks.append(self)

    def on_train_start(self, trainer: Trainer) -> None:
        if (trainer.step + 1) % self.every == 0:
            self.step_probe.arm()

    def on_forward_end(self, ctx: StepContext) -> None:
        self.step_probe.add(ctx.inputs, ctx.targets)

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if trainer.step % self.every == 0 and trainer.dist.is_main:
            self._probe(trainer)
        self.on_train_start(trainer)  # arm for the next step when it is a probe step

    def _probe(self, trainer: Trainer) -> None:
        import torch

        n = min(trainer.exp.train.probe_batch, len(trainer.data.val))
        xs, ys = zip(*(trainer.data.val[i] for i in range(n)), strict=True)
        x, y = torch.stack(xs).to(trainer.device), torch.stack([torch.as_tensor(t) for t in ys]).to(trainer.device)
        applied = self.step_probe.angles
        for layer, stats in bc.probe(trainer.module, x, y, loss_fn=task_loss).items():
            trainer.logger.log(
                "probe",
                trainer.step,
                layer=layer,
                step_update_angle=applied.get(layer),
                **{k: v for k, v in stats.to_dict().items() if k != "reasons"},
            )


class Checkpoints(_AtInterval):
    """Write the checkpoint every ``train.checkpoint_every`` steps, or at each epoch's end when it is unset (the
    trainer also writes one at the end and on a stop signal)."""

    setting = "checkpoint_every"

    def act(self, trainer: Trainer) -> None:
        trainer.save()


class Progress(Callback):
    """A tqdm bar of optimiser steps on rank 0 (``train.progress``; unset: only when stderr is a terminal)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        enabled = trainer.exp.train.progress
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled and trainer.dist.is_main:
            from tqdm import tqdm

            self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit="step", dynamic_ncols=True)

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EarlyStopping(Callback):
    """Stop when the validation ``monitor`` (``acc1``, ``acc5`` or ``loss``) has not improved by more than
    ``min_delta`` for ``patience`` evaluations in a row (evaluations are all-reduced, so every rank agrees). Its
    best value and count are saved in the checkpoint, so a resumed run stops where a straight one would."""

    MODES = {"acc1": 1.0, "acc5": 1.0, "loss": -1.0}  # +1: higher is better

    def __init__(self, monitor: str = "acc1", patience: int = 3, min_delta: float = 0.0) -> None:
        if monitor not in self.MODES:
            raise ConfigError(
                "EarlyStopping cannot watch this figure", key="monitor", given=monitor, expected=" | ".join(self.MODES)
            )
        if patience < 1:
            raise ConfigError("patience counts evaluations", key="patience", given=patience, expected="an int >= 1")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best, self.bad = -math.inf, 0

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        value = self.MODES[self.monitor] * metrics[self.monitor]
        if value > self.best + self.min_delta:
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            trainer.request_stop(
                f"val {self.monitor} did not improve by more than {self.min_delta} in "
                f"{self.patience} evaluations (best {self.MODES[self.monitor] * self.best:.4g})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad = float(state["best"]), int(state["bad"])


def default_callbacks(trainer: Trainer) -> list[Callback]:
    """The built-in callbacks in call order: log, evaluate, probe (when ``train.probe_every``), checkpoint,
    progress, log lines."""
    probes: list[Callback] = [Probes(trainer)] if trainer.exp.train.probe_every else []
    return [MetricsLog(), Evaluation(), *probes, Checkpoints(), Progress(), LogLines()]


__all__ = [
    "Checkpoints",
    "EarlyStopping",
    "Evaluation",
    "LogLines",
    "MetricsLog",
    "Probes",
    "Progress",
    "default_callbacks",
]
