"""The training loop, to read top to bottom: [`Trainer.train`][biocircuits.train.trainer.Trainer.train] runs epochs; an
epoch runs optimiser steps, each ``grad_accum`` micro-batches (load, forward phase, backward phase with errors through
each layer's feedback weights) and then the update phase (optimiser + plasticity + Dale). Everything else -- logging,
evaluation, probes, checkpoints, progress, plots -- is a [`Callback`][biocircuits.train.callback.Callback]."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from biocircuits.config.experiment import Experiment
from biocircuits.errors import DataError, TrainingDiverged
from biocircuits.phases.step import PhaseCallback, StepContext

from . import distributed
from .build import build_run, stop_on_signals
from .callback import Callback, CallbackList
from .callbacks import default_callbacks
from .evaluate import evaluate, topk_correct
from .logging import RunLogger, dataset_record
from .run_folder import RunFolder
from .state import kept, resume_run, run_summary, save_run


class Trainer:
    """Builds the run's parts ([`build_run`][biocircuits.train.build.build_run]) and trains them; the user's
    ``callbacks`` run after the built-in ones (a phase callback also joins the phase-separated step)."""

    def __init__(
        self, exp: Experiment, run_dir: str | Path, callbacks: Sequence[Callback | PhaseCallback] = ()
    ) -> None:
        self.exp, self.folder = exp, RunFolder(run_dir)
        parts = build_run(exp, [cb for cb in callbacks if isinstance(cb, PhaseCallback)])
        self.__dict__.update(vars(parts))  # the run's parts as attributes: module, model, optimizer, ... (RunParts)
        self.logger = RunLogger(self.folder, enabled=self.dist.is_main, tensorboard=exp.train.tensorboard)
        self.callbacks = CallbackList([*default_callbacks(self), *(c for c in callbacks if isinstance(c, Callback))])
        self.step, self.epoch, self.samples_in_epoch = 0, 0, 0
        self.best_acc1, self.last_val = -math.inf, {}
        self.saved_step: int | None = None  # the step of the checkpoint in the folder, once one is known good
        self.start_time, self.stop_reason, self._signal = time.perf_counter(), None, {"stop": False}

    # --- services for callbacks ----------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """End the run after this step as a finished run (evaluated, checkpointed, ``stopped_early`` in the
        summary). Under DDP every rank must ask at the same step (decide from all-reduced figures)."""
        self.stop_reason = reason

    def evaluate(self) -> dict[str, Any]:
        """Validation loss and top-1/top-5 over every rank; updates ``best_acc1``; calls ``on_eval_end``."""
        module = self.model if not self.dist.enabled else self.module
        val = evaluate(
            module, self.val_loader, self.device, self.dist, self.phased.amp_dtype, self.exp.train.channels_last
        )
        self.best_acc1 = max(self.best_acc1, val["acc1"])
        self.last_val = {**val, "step": self.step}
        self.callbacks.fire("on_eval_end", self, self.last_val)
        return self.last_val

    def save(self) -> None:
        """Write the checkpoint ([`save_run`][biocircuits.train.state.save_run]: never one with a NaN or infinity)."""
        save_run(self)

    def resume(self) -> dict[str, list[Any]]:
        """Load the checkpoint ([`resume_run`][biocircuits.train.state.resume_run]); returns the settings it changes."""
        return resume_run(self)

    # --- the loop ----------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train epoch by epoch up to ``total_steps``; SIGINT/SIGTERM write a checkpoint and return early."""
        self.logger.write_config(self.exp.resolved_dict())
        self.logger.write_json(self.folder.dataset, dataset_record(self.exp.data.name, self.data, self.num_classes))
        self.start_time = time.perf_counter()
        self.callbacks.fire("on_train_start", self)
        with stop_on_signals(self._signal):
            while self.step < self.total_steps and not self._signal["stop"] and self.stop_reason is None:
                self._train_epoch()
        if self._signal["stop"]:
            self.save()
            print(
                f"stopped by signal at step {self.step}; checkpoint written to {self.folder.checkpoint}; "
                "continue with --resume",
                file=sys.stderr,
            )
            summary: dict[str, Any] = {"interrupted": True, "steps": self.step}
        else:
            if not self.last_val or self.last_val.get("step") != self.step:
                self.evaluate()
            self.save()
            summary = run_summary(self, time.perf_counter() - self.start_time)
        self.callbacks.fire("on_train_end", self, summary)
        return summary

    def _train_epoch(self) -> None:
        """One pass over the training set (what is left of it when resuming mid-epoch): ``grad_accum`` micro-batches
        per optimiser step, then ``on_step_end``. Returns early at a stop or after the last step; otherwise ends the
        epoch (``on_epoch_end``)."""
        accum = self.exp.train.grad_accum
        self.train_sampler.set_epoch(self.epoch)
        self.train_sampler.skip = self.samples_in_epoch // self.dist.world
        steps, unfilled = divmod(len(self.train_loader), accum)
        batches, tick = iter(self.train_loader), time.perf_counter()
        for _ in range(steps):
            metrics = {"loss": 0.0, "correct1": 0.0, "correct5": 0.0, "samples": 0, "data_s": 0.0, "compute_s": 0.0}
            for micro in range(accum):  # gradients are all-reduced on the last micro-batch only
                ctx = self._micro_batch(batches, metrics, since=tick, sync=micro == accum - 1, first=micro == 0)
                tick = time.perf_counter()
            self._update(ctx, metrics)
            self.callbacks.fire("on_step_end", self, metrics)
            self._signal["stop"] = distributed.broadcast_flag(self._signal["stop"], self.dist, self.device)
            if distributed.broadcast_flag(self.stop_reason is not None, self.dist, self.device):  # ranks agree
                self.stop_reason = self.stop_reason or "another rank's callback asked to stop"
            if self._signal["stop"] or self.stop_reason is not None or self.step >= self.total_steps:
                return
            tick = time.perf_counter()
        for _ in range(unfilled):  # too few micro-batches left for a step: their gradients carry into the next
            self._micro_batch(batches, {}, since=tick, sync=False)
            tick = time.perf_counter()
        self.epoch, self.samples_in_epoch = self.epoch + 1, 0
        self.callbacks.fire("on_epoch_end", self)

    def _micro_batch(
        self, batches: Iterator, metrics: dict[str, Any], since: float, sync: bool, first: bool = False
    ) -> StepContext:
        """Load a micro-batch (data time: from ``since`` until it is on the device), then the forward phase and
        the backward phase (errors through the feedback pathways; DDP all-reduces only when ``sync``)."""
        try:
            x, y = next(batches)
        except DataError as err:  # at a step boundary the state is whole: keep it before stopping
            if first:
                self.save()
            raise DataError(f"{err}; {kept(self)}; fix or remove the file, then continue with --resume") from None
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.exp.train.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        data_s, compute_start = time.perf_counter() - since, time.perf_counter()
        ctx = self.phased.forward(x, y, self.step)
        self.phased.backward(ctx, sync=sync)
        self.samples_in_epoch += self.per_rank_batch * self.dist.world
        if metrics:
            loss, (c1, c5) = float(ctx.loss.detach()), topk_correct(ctx.outputs.detach(), ctx.targets)
            metrics["loss"] += loss * len(y)
            metrics["finite"] = metrics.get("finite", True) and math.isfinite(loss)
            for key, value in (
                ("correct1", c1),
                ("correct5", c5),
                ("samples", len(y)),
                ("data_s", data_s),
                ("compute_s", time.perf_counter() - compute_start),
            ):
                metrics[key] += value
        return ctx

    def _update(self, ctx: StepContext, metrics: dict[str, Any]) -> None:
        """Update phase: stop when any rank's loss was not finite; else the optimiser step (with plasticity and
        Dale hooks), then the lr schedule. Completes ``metrics`` (its time counts as compute)."""
        begin = time.perf_counter()
        loss = metrics["loss"] / max(metrics["samples"], 1)
        if distributed.broadcast_flag(not metrics.pop("finite"), self.dist, self.device):
            raise TrainingDiverged(f"loss became {float(ctx.loss.detach())} at step {self.step + 1}; {kept(self)}")
        self.phased.update(ctx)
        self.scheduler.step()
        self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        metrics.update(
            step=self.step,
            epoch=self.step / self.steps_per_epoch,
            loss=loss,
            lr=self.optimizer.param_groups[0]["lr"],  # after the schedule's step, as logged before
            grad_norm=ctx.grad_norm,
            compute_s=metrics["compute_s"] + time.perf_counter() - begin,
        )

    def close(self) -> None:
        self.logger.close()  # the process group stays up for further runs (compare); the CLI tears it down


# The entry point lives in run.py (it builds a Trainer); re-exported here, where it has always been imported from.
from .run import run_experiment  # noqa: E402  (after Trainer: run.py imports it)

__all__ = ["Trainer", "run_experiment"]
