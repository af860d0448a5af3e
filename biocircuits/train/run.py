"""One training run from start to end: [`run_experiment`][biocircuits.train.run.run_experiment] checks the
``--resume``/``--overwrite`` request against the run folder, claims the folder, builds the
[`Trainer`][biocircuits.train.trainer.Trainer], records the start (or resume) in the run's history and trains."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from biocircuits.config.experiment import Experiment
from biocircuits.errors import CheckpointError, RunFolderError
from biocircuits.phases.step import PhaseCallback

from . import distributed
from .build import run_context
from .callback import Callback
from .claim import claim_folder
from .log_lines import ranked_failures
from .resume_check import check_resume
from .run_folder import RunFolder
from .trainer import Trainer


def run_experiment(
    exp: Experiment,
    run_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[Callback | PhaseCallback] = (),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train ``exp`` into ``run_dir`` under its lock (resuming from its checkpoint when asked, after checking the
    saved config; ``overwrite`` moves an earlier run aside), with the built-in callbacks and ``callbacks``; returns
    the summary. A folder that holds a run is refused ([`claim_folder`][biocircuits.train.claim.claim_folder])."""
    folder = RunFolder(run_dir)
    _check_request(folder, resume, overwrite)
    with (
        claim_folder(folder.path, resume=resume, overwrite=overwrite) as moved,
        run_context(exp.train),
        ranked_failures(distributed.current()) as failure,
    ):  # a failing rank names itself (and its step)
        changes = (
            check_resume(folder.read_config(), exp.resolved_dict(), str(folder.config))
            if resume and folder.config.is_file()
            else {}
        )
        trainer = failure.where = Trainer(exp, run_dir, callbacks)
        try:
            trainer.logger.append_history(_start_event(trainer, resume, changes, moved))
            return trainer.train()
        finally:
            trainer.close()


def _check_request(folder: RunFolder, resume: bool, overwrite: bool) -> None:
    """Refuse ``--resume`` with ``--overwrite``, and ``--resume`` where the folder holds no checkpoint."""
    if resume and overwrite:
        raise RunFolderError(
            "--resume and --overwrite exclude each other",
            key="--overwrite",
            suggestion="--resume continues the run; --overwrite moves it aside and starts afresh",
        )
    if resume and not folder.checkpoint.is_file():
        raise CheckpointError(
            f"{folder.checkpoint}: no checkpoint here (nothing to resume); start without --resume"
            + (" (use --overwrite: the folder holds an unfinished run)" if folder.is_run() else "")
        )


def _start_event(trainer: Trainer, resume: bool, changes: dict[str, Any], moved: Path | None) -> dict[str, Any]:
    """The history record of the run's start: when, or the step it resumes at and the settings the resume changed
    (the saved config's against this one's, then the checkpoint's); where an earlier run was moved aside."""
    event: dict[str, Any] = {
        "event": "resume" if resume else "start",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if resume:
        changes.update(trainer.resume())
        event.update(step=trainer.step, changes=changes)
    if moved is not None:
        event["earlier_run_moved_to"] = str(moved)
    return event
