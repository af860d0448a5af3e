"""One trial, as Ray Tune runs it in a worker: an ordinary run folder (lock, NaN guard, resume) trained by
[`run_experiment`][biocircuits.train.run.run_experiment], reporting each evaluation to Tune through a callback, and
recording its status in ``trial.json``. A trial that fails is recorded (status and reason), not raised: the sweep
goes on."""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from biocircuits.config.experiment import Experiment
from biocircuits.train.callback import Callback
from biocircuits.train.claim import aside_name, holds_run
from biocircuits.train.trainer import run_experiment

from .folder import TRIAL_FILE, read_json, write_json
from .timeline import TrialTimeline

IMPORTED_AT = time.time()  # in an engine worker: when its imports (torch, biocircuits) were done


class TuneReport(Callback):
    """Reports evaluations to Ray Tune (``ray.tune.report``): step, validation loss and top-1/top-5. Each report
    waits for the engine's driver to take it, so only what the engine uses is sent: every evaluation when
    ``every_evaluation`` (a scheduler stops trials on them), else the final one only (all a grid or a search
    reads). The seconds spent in ``report`` and the count go to ``times`` (the trial's timeline)."""

    def __init__(self, report: Any, every_evaluation: bool = True, times: dict[str, Any] | None = None) -> None:
        self.report, self.every_evaluation = report, every_evaluation
        self.times = times if times is not None else {}
        self.times.update(reports=0, report_s=0.0)

    def send(self, step: int, metrics: dict[str, Any]) -> None:
        begin = time.perf_counter()
        self.report(
            {"step": step, "val_loss": metrics["loss"], "val_acc1": metrics["acc1"], "val_acc5": metrics["acc5"]}
        )
        self.times["reports"] += 1
        self.times["report_s"] += time.perf_counter() - begin

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if self.every_evaluation:
            self.send(trainer.step, metrics)

    def on_train_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        if not self.every_evaluation and trainer.last_val and not summary.get("interrupted"):
            self.send(trainer.last_val["step"], trainer.last_val)


def mark(run_dir: Path, record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Update the trial's ``trial.json`` with ``fields`` (its place in the sweep always included)."""
    state = {**read_json(run_dir / TRIAL_FILE), **record, **fields}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / TRIAL_FILE, state)
    return state


def mark_ended_by_engine(run_dir: Path, record: dict[str, Any], scheduler: str | None, times: dict[str, Any]) -> None:
    """The engine ended the trial: ``stopped`` (and done) when a ``scheduler`` decided it, else ``interrupted``
    (the sweep was stopped; a rerun continues it)."""
    if scheduler is None:
        mark(run_dir, record, status="interrupted", reason="the sweep was stopped", timeline=times)
    else:
        mark(
            run_dir,
            record,
            status="stopped",
            reason=f"stopped early by the scheduler ({scheduler})",
            finished_at=time.time(),
            timeline=times,
        )


def train_trial(
    run_dir: Path,
    record: dict[str, Any],
    experiment: dict[str, Any],
    source: str | None,
    threads: int,
    report: Any = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Train the trial into ``run_dir``: resume from its checkpoint when it has one (a run left without one is
    moved aside to ``<id>.old-N`` and started afresh); returns the final ``trial.json`` state. The engine ends a
    trial by raising ``SystemExit`` in ``report``: recorded ``stopped`` when a ``scheduler`` decided it, else
    ``interrupted``. ``threads`` is recorded; the engine's worker sets it
    ([`tune_trainable`][biocircuits.app.sweep.trial.tune_trainable])."""
    timeline = TrialTimeline(IMPORTED_AT, entered_at=time.time())
    state = read_json(run_dir / TRIAL_FILE)
    checkpoint = (run_dir / "checkpoint.pt").is_file()
    if not checkpoint and holds_run(run_dir):  # stopped before its first checkpoint: start afresh, keep the old
        os.rename(run_dir, aside_name(run_dir))
    mark(
        run_dir,
        record,
        status="running",
        started_at=state.get("started_at") or time.time(),
        attempts=int(state.get("attempts", 0)) + 1,
        threads=threads,
    )
    try:
        exp = Experiment.from_dict(experiment, file=source)
        every = scheduler is not None
        reporting = [TuneReport(report, every, timeline.times)] if report is not None else []
        summary = run_experiment(exp, run_dir, resume=checkpoint, callbacks=[timeline, *reporting])
    except SystemExit:
        mark_ended_by_engine(run_dir, record, scheduler, timeline.times)
        raise
    except Exception as err:  # recorded with its reason; the sweep goes on
        reason = f"{type(err).__name__}: {err}".strip()
        final = mark(
            run_dir,
            record,
            status="failed",
            reason=reason[:2000],
            finished_at=time.time(),
            traceback=traceback.format_exc()[-4000:],
            timeline=timeline.times,
        )
    else:
        if summary.get("interrupted"):
            return mark(run_dir, record, status="interrupted", reason="stopped by a signal", timeline=timeline.times)
        final = mark(
            run_dir,
            record,
            status="finished",
            reason=summary.get("stopped_early"),
            finished_at=time.time(),
            timeline=timeline.times,
        )
    return final


def tune_trainable(
    config: dict[str, Any], folder: str, trials: dict[str, dict[str, Any]], threads: int, scheduler: str | None = None
) -> None:
    """The function Ray Tune calls for a trial: ``config["trial"]`` names one of ``trials`` (record, experiment,
    source), trained into ``folder/trials/<id>``."""
    import torch
    from ray import tune

    torch.set_num_threads(threads)  # this worker's torch threads (a process-wide setting: set here, not per run)
    tid = config["trial"]
    entry = trials[tid]
    train_trial(
        Path(folder) / "trials" / tid,
        entry["record"],
        entry["experiment"],
        entry["source"],
        threads,
        report=tune.report,
        scheduler=scheduler,
    )
