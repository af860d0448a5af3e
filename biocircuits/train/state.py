"""What a checkpoint holds, how it is written and how a run is put back from it: model (per-stream buffers gathered
into global stream order under DDP), optimiser, schedule, loss scaler, every RNG, the loop's counters and each
callback's state; and the summary a finished run reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from biocircuits.errors import CheckpointError, TrainingDiverged
from biocircuits.phases.transforms.streams import stream_buffer_names

from . import distributed
from .checkpoint import load_checkpoint, nonfinite_entries, rng_state, save_checkpoint, set_rng_state
from .resume_check import check_resume

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

REQUIRED = ("model", "optimizer", "scheduler", "rng", "step", "epoch", "samples_in_epoch", "best_acc1")


def run_state(trainer: Trainer) -> dict[str, Any]:
    """The checkpoint's dictionary (same keys as checkpoints written before callbacks, plus ``callbacks``)."""
    module, dist = trainer.module, trainer.dist
    model = distributed.gather_streams(
        module.state_dict(), stream_buffer_names(module), stream_buffer_names(module, errors=True), dist
    )
    return {
        "model": model,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler else None,
        "rng": rng_state(),
        "step": trainer.step,
        "epoch": trainer.epoch,
        "samples_in_epoch": trainer.samples_in_epoch,
        "best_acc1": trainer.best_acc1,
        "config": trainer.exp.resolved_dict(),
        "world": dist.world,
        "input_shape": list(trainer.data.input_shape),
        "num_classes": trainer.num_classes,
        "callbacks": trainer.callbacks.state_dict(),
    }


def restore_run(trainer: Trainer, ckpt: dict[str, Any], path: str) -> None:
    """Load ``ckpt`` into the trainer's model, optimiser, schedule, scaler, RNGs, counters and callbacks; a
    checkpoint that does not fit raises [`CheckpointError`][biocircuits.errors.CheckpointError] naming the first
    mismatch."""
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{path}: incomplete checkpoint, no {', '.join(missing)}; restore a copy, or start afresh with --overwrite"
        )
    module, dist = trainer.module, trainer.dist
    try:
        module.load_state_dict(
            distributed.scatter_streams(
                ckpt["model"], stream_buffer_names(module), stream_buffer_names(module, errors=True), dist
            )
        )
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.scheduler.load_state_dict(ckpt["scheduler"])
        if trainer.scaler is not None and ckpt.get("scaler"):
            trainer.scaler.load_state_dict(ckpt["scaler"])
        trainer.callbacks.load_state_dict(ckpt.get("callbacks", {}))
        set_rng_state(ckpt["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: the checkpoint does not fit this run ({first}); resume with the run's "
            "own config, or start afresh with --overwrite"
        ) from None
    trainer.step, trainer.epoch, trainer.samples_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["samples_in_epoch"]
    trainer.best_acc1, trainer.saved_step = ckpt["best_acc1"], ckpt["step"]


def save_run(trainer: Trainer) -> None:
    """Write the checkpoint, unless a parameter, buffer or optimiser state holds a NaN or an infinity (checked on
    every rank): then nothing is written and [`TrainingDiverged`][biocircuits.errors.TrainingDiverged] says what is
    kept."""
    state = run_state(trainer)
    bad = nonfinite_entries({"model": state["model"], "optimizer": state["optimizer"]})
    if distributed.broadcast_flag(bool(bad), trainer.dist, trainer.device):
        raise TrainingDiverged(
            f"non-finite values at step {trainer.step} in {', '.join(bad[:4]) or 'another rank'}"
            f"{' ...' if len(bad) > 4 else ''}; not saved; {kept(trainer)}"
        )
    if trainer.dist.is_main:
        save_checkpoint(trainer.folder.checkpoint, state)
    trainer.saved_step = trainer.step


def resume_run(trainer: Trainer) -> dict[str, list[Any]]:
    """Load the folder's checkpoint after checking that its config matches the run's (only the safe settings of
    [`resume_check`][biocircuits.train.resume_check] may differ); returns those changes, and a changed world size
    (resumed exactly)."""
    path = trainer.folder.checkpoint
    ckpt = load_checkpoint(path, map_location=trainer.device)
    changes = check_resume(ckpt["config"], trainer.exp.resolved_dict(), str(path)) if "config" in ckpt else {}
    if ckpt.get("world", trainer.dist.world) != trainer.dist.world:  # exact by design: the sampler splits globally
        changes["world_size"] = [ckpt["world"], trainer.dist.world]
    restore_run(trainer, ckpt, str(path))
    trainer.logger.truncate_after(trainer.step)
    return changes


def run_summary(trainer: Trainer, wall_s: float) -> dict[str, Any]:
    """``summary.json``: the last validation figures, the best top-1, length, wall time, layout, constraints."""
    val, constraints = trainer.last_val, trainer.constraints
    return {
        "name": trainer.exp.name,
        "rule": constraints.feedback.rule,
        "dale": constraints.dale_on,
        "val_acc1": val.get("acc1"),
        "val_acc5": val.get("acc5"),
        "val_loss": val.get("loss"),
        "best_val_acc1": trainer.best_acc1,
        "epochs": trainer.step / trainer.steps_per_epoch,
        "steps": trainer.step,
        "wall_s": wall_s,
        "world_size": trainer.dist.world,
        "device": str(trainer.device),
        "ranks_identical": distributed.ranks_identical(trainer.module, trainer.dist, trainer.device),
        "constraints": constraints.source or "inline",
        "stopped_early": trainer.stop_reason,
        "num_classes": trainer.num_classes,
        "input_shape": list(trainer.data.input_shape),
    }


def kept(trainer: Trainer) -> str:
    """What the run folder holds to continue from, in words."""
    if trainer.saved_step is None:
        return f"no checkpoint was written yet in {trainer.folder.path}"
    return f"the last good checkpoint (step {trainer.saved_step}) is kept in {trainer.folder.checkpoint}"
