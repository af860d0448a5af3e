"""The training loop, to read top to bottom: :meth:`Trainer.train` runs epochs; an epoch runs optimiser steps, each
``grad_accum`` micro-batches (load, forward phase, backward phase with errors through each layer's feedback
weights) and then the update phase (optimiser + plasticity + Dale); logging, evaluation, probes and checkpoints
follow at their intervals."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.core import constraint_buffer_names
from biocircuits.core.interface import attachment_reports
from biocircuits.data.loaders import make_loader
from biocircuits.data.registry import build_data
from biocircuits.errors import CheckpointError, ConfigError, DataError, RunFolderError, TrainingDiverged
from biocircuits.models.registry import build_model
from biocircuits.phases.step import PhaseCallback, PhasedStep, StepContext
from biocircuits.phases.transforms.streams import set_shard, stream_buffer_names
from biocircuits.probes.step import StepProbe

from . import distributed
from .checkpoint import load_checkpoint, nonfinite_entries, rng_state, save_checkpoint, set_rng_state
from .claim import claim_folder
from .evaluate import evaluate, topk_correct
from .logging import RunLogger, dale_audit
from .optim import build_optimizer, build_scheduler
from .resume_check import check_resume
from .run_folder import RunFolder

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextmanager
def stop_on_signals(flag: dict[str, bool]):
    """SIGINT/SIGTERM set ``flag['stop']``: the loop then writes a checkpoint and returns cleanly."""
    def handler(signum, frame):
        flag["stop"] = True
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Trainer:
    """Builds data, model, constraints, optimiser and schedule from an :class:`Experiment`, then trains."""

    def __init__(self, exp: Experiment, run_dir: str | Path, callbacks: list[PhaseCallback] | None = None) -> None:
        self.exp, self.folder, t = exp, RunFolder(run_dir), exp.train
        if t.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("CUDA is not available here", key="train.device", given="cuda",
                              suggestion="use train.device: cpu or auto")
        kind = "cuda" if t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available()) else "cpu"
        self.dist = distributed.setup(kind)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if kind == "cuda" else "cpu")
        if t.batch_size % self.dist.world:
            raise ConfigError("train.batch_size must divide evenly over the processes", key="train.batch_size",
                              given=t.batch_size, expected=f"a multiple of {self.dist.world}")
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = kind == "cuda" and not t.deterministic
        torch.manual_seed(t.seed)  # same initial weights on every rank
        self.data = build_data(exp.data)
        self.num_classes = exp.model.num_classes or self.data.num_classes
        if self.num_classes < self.data.num_classes:
            raise ConfigError("fewer classes than the dataset's labels", key="model.num_classes",
                              expected=f"at least {self.data.num_classes} (the dataset's classes)",
                              given=self.num_classes, suggestion="leave model.num_classes out to use the dataset's")
        self.module = build_model(exp.model.name, self.data.input_shape, self.num_classes, exp.model.kwargs)
        self.constraints = exp.resolved_constraints()
        bc.apply(self.module, self.constraints)
        set_shard(self.module, self.dist.world)   # per-stream state: this rank holds every world-th stream
        self.module.to(self.device)
        if t.channels_last:
            self.module.to(memory_format=torch.channels_last)
        self.optimizer = bc.bind(build_optimizer(self.module, exp.optim), self.module)
        model: nn.Module = self.module
        if self.dist.enabled:  # rule buffers are identical on every rank by construction: no broadcast
            nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                model, constraint_buffer_names(model))
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.dist.local_rank] if kind == "cuda" else None)
        self.model = torch.compile(model) if t.compile else model
        self.per_rank_batch = t.batch_size // self.dist.world
        self.train_loader, self.train_sampler = make_loader(
            self.data.train, self.per_rank_batch, train=True, world=self.dist.world, rank=self.dist.rank,
            seed=t.seed, spec=exp.data)
        if len(self.train_loader) == 0:
            raise ConfigError("the training set is smaller than one batch", key="train.batch_size", given=t.batch_size)
        self.val_loader, _ = make_loader(self.data.val, (t.eval_batch_size or t.batch_size) // self.dist.world or 1,
                                         train=False, world=self.dist.world, rank=self.dist.rank, seed=t.seed,
                                         spec=exp.data)
        self.steps_per_epoch = max(1, len(self.train_loader) // t.grad_accum)
        self.total_steps = t.steps or t.epochs * self.steps_per_epoch
        self.scheduler = build_scheduler(self.optimizer, exp.schedule, self.steps_per_epoch, self.total_steps,
                                         exp.optim.lr)
        self.amp_dtype = AMP_DTYPES[t.amp]
        self.scaler = torch.amp.GradScaler(kind) if t.amp == "fp16" else None
        self.phased = PhasedStep(
            self.model, self.optimizer,
            lambda out, y: F.cross_entropy(out.float(), y, label_smoothing=t.label_smoothing),
            amp_dtype=self.amp_dtype, scaler=self.scaler, grad_clip=t.grad_clip, accum=t.grad_accum,
            callbacks=callbacks or [])
        # the update each layer really receives at a probe step vs backprop's on the same batch
        self.step_probe = StepProbe(self.module, self.optimizer, self.phased.loss_fn) if t.probe_every else None
        self.logger = RunLogger(self.folder, enabled=self.dist.is_main, tensorboard=t.tensorboard)
        self.step, self.epoch, self.samples_in_epoch = 0, 0, 0
        self.best_acc1, self.last_val = -math.inf, {}
        self.saved_step: int | None = None  # the step of the checkpoint in the folder, once one is known good
        torch.manual_seed(t.seed + 1 + self.dist.rank)  # each rank its own stream from here (dropout, augmentation)

    # --- checkpoints -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        model = distributed.gather_streams(self.module.state_dict(), stream_buffer_names(self.module),
                                           stream_buffer_names(self.module, errors=True), self.dist)
        return {
            "model": model, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": rng_state(), "step": self.step, "epoch": self.epoch, "samples_in_epoch": self.samples_in_epoch,
            "best_acc1": self.best_acc1, "config": self.exp.resolved_dict(), "world": self.dist.world,
            "input_shape": list(self.data.input_shape), "num_classes": self.num_classes,
        }

    def kept(self) -> str:
        """What the run folder holds to continue from, in words."""
        if self.saved_step is None:
            return f"no checkpoint was written yet in {self.folder.path}"
        return f"the last good checkpoint (step {self.saved_step}) is kept in {self.folder.checkpoint}"

    def save(self) -> None:
        """Write the checkpoint, unless a parameter, buffer or optimiser state holds a NaN or an infinity (checked
        on every rank): then nothing is written and :class:`TrainingDiverged` says what is kept."""
        state = self.state()
        bad = nonfinite_entries({"model": state["model"], "optimizer": state["optimizer"]})
        if distributed.broadcast_flag(bool(bad), self.dist, self.device):
            raise TrainingDiverged(f"non-finite values at step {self.step} in {', '.join(bad[:4]) or 'another rank'}"
                                   f"{' ...' if len(bad) > 4 else ''}; not saved; {self.kept()}")
        if self.dist.is_main:
            save_checkpoint(self.folder.checkpoint, state)
        self.saved_step = self.step

    def resume(self) -> dict[str, list[Any]]:
        """Load the folder's checkpoint after checking that its config matches this run's (only the safe settings
        of :mod:`.resume_check` may differ); returns those changes, and a changed world size (resumed exactly)."""
        path = self.folder.checkpoint
        ckpt = load_checkpoint(path, map_location=self.device)
        missing = [k for k in ("model", "optimizer", "scheduler", "rng", "step", "epoch", "samples_in_epoch",
                               "best_acc1") if k not in ckpt]
        if missing:
            raise CheckpointError(f"{path}: incomplete checkpoint, no {', '.join(missing)}; restore a copy, or start "
                                  "afresh with --overwrite")
        changes = check_resume(ckpt["config"], self.exp.resolved_dict(), str(path)) if "config" in ckpt else {}
        if ckpt.get("world", self.dist.world) != self.dist.world:  # exact by design (the sampler splits globally)
            changes["world_size"] = [ckpt["world"], self.dist.world]
        try:
            self.module.load_state_dict(
                distributed.scatter_streams(ckpt["model"], stream_buffer_names(self.module),
                                            stream_buffer_names(self.module, errors=True), self.dist))
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.scaler is not None and ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"])
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{path}: the checkpoint does not fit this run ({first}); resume with the run's "
                                  "own config, or start afresh with --overwrite") from None
        self.step, self.epoch, self.samples_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["samples_in_epoch"]
        self.best_acc1, self.saved_step = ckpt["best_acc1"], ckpt["step"]
        self.logger.truncate_after(self.step)
        return changes

    # --- the loop ----------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train epoch by epoch up to ``total_steps``; SIGINT/SIGTERM write a checkpoint and return early."""
        self.logger.write_config(self.exp.resolved_dict())
        start, window, stop = time.perf_counter(), _Window(), {"stop": False}
        progress = _progress(self.total_steps, self.step, self.exp.train.progress and self.dist.is_main)
        with stop_on_signals(stop):
            while self.step < self.total_steps and not stop["stop"]:
                self._train_epoch(window, progress, start, stop)
        progress.close()
        if stop["stop"]:
            self.save()
            print(f"stopped by signal at step {self.step}; checkpoint written to {self.folder.checkpoint}; "
                  "continue with --resume", file=sys.stderr)
            return {"interrupted": True, "steps": self.step}
        if not self.last_val or self.last_val.get("step") != self.step:
            self._evaluate()
        self.save()
        return self._summary(time.perf_counter() - start)

    def _train_epoch(self, window: _Window, progress: Any, start: float, stop: dict[str, bool]) -> None:
        """One pass over the training set (what is left of it when resuming mid-epoch): ``grad_accum``
        micro-batches per optimiser step. Returns early at a stop signal or after the last step; otherwise
        ends the epoch, evaluating and checkpointing when their interval is one epoch (None)."""
        t = self.exp.train
        self.train_sampler.set_epoch(self.epoch)
        self.train_sampler.skip = self.samples_in_epoch // self.dist.world
        steps, unfilled = divmod(len(self.train_loader), t.grad_accum)
        tick = time.perf_counter()
        batches = iter(self.train_loader)
        for _ in range(steps):
            diverged = False
            if self.step_probe is not None and (self.step + 1) % t.probe_every == 0:
                self.step_probe.arm()
            for micro in range(t.grad_accum):  # gradients are all-reduced on the last micro-batch only
                try:
                    ctx, loss = self._micro_batch(batches, window, since=tick, sync=micro == t.grad_accum - 1)
                except DataError as err:  # at a step boundary the state is whole: keep it before stopping
                    if micro == 0:
                        self.save()
                    raise DataError(f"{err}; {self.kept()}; fix or remove the file, then continue with --resume",
                                    ) from None
                diverged = diverged or not math.isfinite(loss)
                tick = time.perf_counter()
            self._update(ctx, loss, diverged, window)
            progress.update(1)
            self._after_step(window, start)
            agreed = distributed.broadcast_flag(stop["stop"], self.dist, self.device)
            if agreed or self.step >= self.total_steps:
                stop["stop"] = agreed  # every rank leaves with the same answer
                return
            tick = time.perf_counter()
        for _ in range(unfilled):  # too few micro-batches left for a step: their gradients carry into the next
            self._micro_batch(batches, window, since=tick, sync=False)
            tick = time.perf_counter()
        self.epoch, self.samples_in_epoch = self.epoch + 1, 0
        if t.eval_every is None:
            self._evaluate()
        if t.checkpoint_every is None:
            self.save()

    def _micro_batch(self, batches: Iterator, window: _Window, since: float, sync: bool) -> tuple[StepContext, float]:
        """Load a micro-batch (data time: from ``since`` until it is on the device), then the forward phase and
        the backward phase (errors through the feedback pathways; DDP all-reduces only when ``sync``)."""
        x, y = next(batches)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.exp.train.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        data_s, compute_start = time.perf_counter() - since, time.perf_counter()
        if self.step_probe is not None:
            self.step_probe.add(x, y)
        ctx = self.phased.forward(x, y, self.step)
        self.phased.backward(ctx, sync=sync)
        self.samples_in_epoch += self.per_rank_batch * self.dist.world
        loss = float(ctx.loss.detach())
        window.add(loss, ctx, data_s, time.perf_counter() - compute_start, len(y))
        return ctx, loss

    def _update(self, ctx: StepContext, loss: float, diverged: bool, window: _Window) -> None:
        """Update phase: stop when any rank's loss was not finite; else the optimiser step (with plasticity and
        Dale hooks), then the lr schedule. Its time counts as compute."""
        begin = time.perf_counter()
        if distributed.broadcast_flag(diverged, self.dist, self.device):
            raise TrainingDiverged(f"loss became {loss} at step {self.step + 1}; {self.kept()}")
        self.phased.update(ctx)
        self.scheduler.step()
        self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        window.add_compute(time.perf_counter() - begin)

    def _after_step(self, window: _Window, start: float) -> None:
        t = self.exp.train
        if self.step % t.log_every == 0 or self.step == self.total_steps:
            self.logger.log("train", self.step, epoch=self.step / self.steps_per_epoch,
                            lr=self.optimizer.param_groups[0]["lr"], wall_s=time.perf_counter() - start,
                            **window.flush(self.dist.world))
            for layer, name, figures in attachment_reports(self.module):  # e.g. the mirror phase: iterations, angle
                self.logger.log("attachment", self.step, layer=layer, attachment=name, **figures)
        if t.eval_every and self.step % t.eval_every == 0:
            self._evaluate()
        if t.probe_every and self.step % t.probe_every == 0 and self.dist.is_main:
            self._probe()
        if t.checkpoint_every and self.step % t.checkpoint_every == 0:
            self.save()

    def _evaluate(self) -> None:
        module = self.model if not self.dist.enabled else self.module
        val = evaluate(module, self.val_loader, self.device, self.dist, self.amp_dtype, self.exp.train.channels_last)
        self.best_acc1 = max(self.best_acc1, val["acc1"])
        self.last_val = {**val, "step": self.step}
        self.logger.log("val", self.step, epoch=self.step / self.steps_per_epoch, loss=val["loss"],
                        acc1=val["acc1"], acc5=val["acc5"])

    def _probe(self) -> None:
        n = min(self.exp.train.probe_batch, len(self.data.val))
        xs, ys = zip(*(self.data.val[i] for i in range(n)), strict=True)
        x, y = torch.stack(xs).to(self.device), torch.as_tensor(ys).to(self.device)
        applied = self.step_probe.angles if self.step_probe is not None else {}
        for layer, stats in bc.probe(self.module, x, y).items():
            self.logger.log("probe", self.step, layer=layer, step_update_angle=applied.get(layer),
                            **{k: v for k, v in stats.to_dict().items() if k != "reasons"})

    def _summary(self, wall_s: float) -> dict[str, Any]:
        summary = {
            "name": self.exp.name, "rule": self.constraints.feedback.rule, "dale": self.constraints.dale_on,
            "val_acc1": self.last_val.get("acc1"), "val_acc5": self.last_val.get("acc5"),
            "val_loss": self.last_val.get("loss"), "best_val_acc1": self.best_acc1,
            "epochs": self.step / self.steps_per_epoch, "steps": self.step, "wall_s": wall_s,
            "world_size": self.dist.world, "device": str(self.device),
            "ranks_identical": distributed.ranks_identical(self.module, self.dist, self.device),
            "constraints": self.constraints.source or "inline",
        }
        self.logger.write_json(self.folder.summary, summary)
        if self.constraints.dale_on and self.dist.is_main:
            self.logger.write_json(self.folder.audit, dale_audit(self.module, spectra=self.exp.train.plots))
        return summary

    def close(self) -> None:
        self.logger.close()  # the process group stays up for further runs (compare); the CLI tears it down


class _Window:
    """Running sums between two log rows: loss, train accuracy, data and compute time, images."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss = self.c1 = self.c5 = self.n = self.data_s = self.compute_s = 0.0
        self.batches = 0
        self.t0 = time.perf_counter()

    def add(self, loss: float, ctx: StepContext, data_s: float, compute_s: float, n: int) -> None:
        a1, a5 = topk_correct(ctx.outputs.detach(), ctx.targets)
        self.loss, self.c1, self.c5, self.n = self.loss + loss * n, self.c1 + a1, self.c5 + a5, self.n + n
        self.data_s, self.compute_s, self.batches = self.data_s + data_s, self.compute_s + compute_s, self.batches + 1

    def add_compute(self, seconds: float) -> None:
        self.compute_s += seconds

    def flush(self, world: int) -> dict[str, float]:
        elapsed = time.perf_counter() - self.t0
        out = {"loss": self.loss / max(self.n, 1), "acc1": 100 * self.c1 / max(self.n, 1),
               "acc5": 100 * self.c5 / max(self.n, 1), "images_per_s": world * self.n / max(elapsed, 1e-9),
               "compute_images_per_s": world * self.n / max(self.compute_s, 1e-9), "data_s": self.data_s,
               "compute_s": self.compute_s}
        self.reset()
        return out


class _NoProgress:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _progress(total: int, done: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm
    return tqdm(total=total, initial=done, unit="step", dynamic_ncols=True)


def run_experiment(exp: Experiment, run_dir: str | Path, resume: bool = False,
                   callbacks: list[PhaseCallback] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train ``exp`` into ``run_dir`` holding its lock (resuming from its checkpoint when asked, after checking the
    saved config; with ``overwrite`` an earlier run there is moved aside first); returns the summary. A folder that
    holds a run is refused otherwise (:func:`.claim.claim_folder`)."""
    folder = RunFolder(run_dir)
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite exclude each other", key="--overwrite",
                             suggestion="--resume continues the run; --overwrite moves it aside and starts afresh")
    if resume and not folder.checkpoint.is_file():
        raise CheckpointError(f"{folder.checkpoint}: no checkpoint here (nothing to resume); start without --resume"
                              + (" (use --overwrite: the folder holds an unfinished run)" if folder.is_run() else ""))
    with claim_folder(folder.path, resume=resume, overwrite=overwrite) as moved:
        changes = check_resume(folder.read_config(), exp.resolved_dict(), str(folder.config)) \
            if resume and folder.config.is_file() else {}
        trainer = Trainer(exp, run_dir, callbacks)
        try:
            event: dict[str, Any] = {"event": "resume" if resume else "start",
                                     "time": datetime.now(UTC).isoformat(timespec="seconds")}
            if resume:
                changes.update(trainer.resume())
                event.update(step=trainer.step, changes=changes)
            if moved is not None:
                event["earlier_run_moved_to"] = str(moved)
            trainer.logger.append_history(event)
            return trainer.train()
        finally:
            trainer.close()
