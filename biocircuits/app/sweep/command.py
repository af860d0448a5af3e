"""The ``biocircuits sweep`` command: plan and validate the trials, run those not done on Ray Tune, then write the
results and a summary with confidence intervals ([`report`][biocircuits.app.sweep.report])."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from biocircuits.errors import ConfigError, did_you_mean
from biocircuits.train.claim import claim_folder

from . import session
from .adaptive import run_search, search_plan
from .engine import EngineFailed, import_ray, ray_session, run_trials
from .folder import DONE, SweepFolder, add_command_timeline, start_record
from .report import sweep_settings, write_report
from .results import sweep_rows
from .spec import SweepSpec, Trial, expand, load_sweep
from .trial import mark

EXIT_FINISHED, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def default_folder(sweep_file: str | Path, trials: list[Trial]) -> Path:
    """``<experiment output>/<sweep file stem>``, e.g. ``runs/rules_x_seeds``."""
    return Path(trials[0].experiment.output) / Path(sweep_file).stem


def adaptive(spec: SweepSpec) -> bool:
    """Whether the sweep's samples are chosen while it runs (Optuna) rather than planned."""
    return spec.search is not None and spec.search.algorithm == "optuna"


def plan(
    sweep_file: str | Path, sets: dict[str, Any] | None = None, only: list[str] | None = None
) -> tuple[SweepSpec, dict[str, Any], list[Trial]]:
    """Load the sweep file (with ``sets`` and ``only``: [`spec.load_sweep`][biocircuits.app.sweep.spec.load_sweep]) and
    build every trial's experiment (all validation happens here); an Optuna search has no planned trials: its experiment
    is validated at every bound of its space."""
    spec, data = load_sweep(sweep_file, sets, only)
    if adaptive(spec):
        search_plan(spec, sweep_file)
        return spec, data, []
    trials = expand(spec, sweep_file)
    labels = list(dict.fromkeys(t.variant for t in trials))
    if spec.baseline is not None and spec.baseline not in labels:
        raise ConfigError(
            "the baseline is no variant of this sweep",
            file=str(sweep_file),
            key="baseline",
            given=spec.baseline,
            expected="one of " + ", ".join(labels),
            suggestion=did_you_mean(spec.baseline, labels),
        )
    return spec, data, trials


def settle(folder: SweepFolder, todo: list[Trial], errors: dict[str, str | None], stopped: float | None) -> None:
    """After the engine returns: trials a signal stopped (still ``running``, or ``stopped`` after the signal came)
    are ``interrupted`` and continue on a rerun; trials the engine lost without a signal (a worker died) failed."""
    for t in todo:
        state = folder.trial_state(t.id)
        status = state.get("status")
        if stopped is not None and (
            status == "running" or (status == "stopped" and state.get("finished_at", 0) >= stopped)
        ):
            mark(folder.trial(t.id), t.record(), status="interrupted", reason="the sweep was stopped", finished_at=None)
        elif stopped is None and status not in DONE:
            mark(
                folder.trial(t.id),
                t.record(),
                status="failed",
                finished_at=time.time(),
                reason=errors.get(t.id) or "the trial's worker ended without a result",
            )


def run_sweep(
    sweep_file: str | Path,
    output: str | Path | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    num_cpus: int | None = None,
    sets: dict[str, Any] | None = None,
    only: list[str] | None = None,
) -> tuple[int, Path]:
    """Run the sweep's trials that are not done yet (finished and failed ones are left as they are; interrupted
    ones resume from their checkpoints), then write the results and the summary. ``sets`` / ``only``: the command
    line's ``--set`` and ``--variants``. Returns the exit code (0 every trial finished, 1 some failed, 130 some are
    left to continue after a stop) and the sweep folder."""
    try:
        spec, data, trials = plan(sweep_file, sets, only)
        session.TIMES["validated_at"] = time.time()
        search = search_plan(spec, sweep_file) if adaptive(spec) else None
        folder = SweepFolder(output if output else default_folder(sweep_file, trials or search.bounds()[:1]))
        ray = import_ray()
        with claim_folder(folder.path, resume=True, holds=lambda p: False, what="sweep"):
            start_record(folder, sweep_file, data, None if search else [t.id for t in trials], ray.__version__, address)
            failed = run_engine(folder, spec, trials, search, address, max_concurrent, num_cpus)
            rows = write_sweep_report(folder, spec)
            session.TIMES["report_at"] = time.time()
            session.release()  # Ray shut down while the report was written; the timeline while the folder is ours
            add_command_timeline(folder, session.take_times())
    finally:  # the command ends once its Ray is down (or was never used); a failed run leaves no timeline behind
        session.release()
        session.take_times()
    statuses = {row["status"] for row in rows}
    code = EXIT_INTERRUPTED if statuses - set(DONE) else EXIT_FAILED if "failed" in statuses else EXIT_FINISHED
    return EXIT_FAILED if failed else code, folder


def run_engine(
    folder: SweepFolder,
    spec: SweepSpec,
    trials: list[Trial],
    search: Any,
    address: str | None,
    max_concurrent: int | None,
    num_cpus: int | None,
) -> str | None:
    """Run the planned trials (or the Optuna ``search``) on the engine; returns the engine's own error (None when
    it had none), after recording it ([`engine_failed`][biocircuits.app.sweep.command.engine_failed])."""
    try:
        if search is None:
            run_planned(folder, spec, trials, address, max_concurrent, num_cpus)
        else:
            run_searched(folder, spec, search, address, max_concurrent, num_cpus)
    except EngineFailed as err:
        engine_failed(folder, str(err))
        return str(err)
    return None


def write_sweep_report(folder: SweepFolder, spec: SweepSpec) -> list[dict[str, Any]]:
    """Write the sweep's results, summary and figures from its trials' folders; returns the rows."""
    rows, _ = sweep_rows(folder)
    settings = sweep_settings(folder, rows)
    write_report(
        folder.path,
        rows,
        spec.metric,
        spec.baseline,
        title=f"{folder.path.name}: {spec.metric}",
        columns=settings["columns"],
        header=settings["header"],
    )
    return rows


def engine_failed(folder: SweepFolder, error: str) -> None:
    """After the engine itself failed: every trial not done is ``interrupted`` with the engine's error as its reason
    (a rerun continues it from its checkpoint)."""
    print(
        f"error: Ray Tune failed ({error}); the unfinished trials are recorded interrupted: rerun the same "
        "command to continue",
        file=sys.stderr,
        flush=True,
    )
    for tid in folder.trial_ids():
        if folder.trial_state(tid).get("status") not in DONE:
            mark(
                folder.trial(tid),
                {},
                status="interrupted",
                reason=f"the engine failed: {error}"[:2000],
                finished_at=None,
            )


def run_searched(
    folder: SweepFolder,
    spec: SweepSpec,
    search: Any,
    address: str | None,
    max_concurrent: int | None,
    num_cpus: int | None,
) -> None:
    """Continue an Optuna search: resume its interrupted samples, then draw the missing ones."""
    states = [folder.trial_state(tid) for tid in folder.trial_ids()]
    print(f"sweep {folder.path}: Optuna search, {spec.search.num_samples} samples, {len(states)} started", flush=True)
    if len(states) < spec.search.num_samples or any(s.get("status") not in DONE for s in states):
        with ray_session(address, num_cpus, spec.resources.torch_threads()):
            known, errors, stopped = run_search(folder, spec, search, max_concurrent)
        settle(folder, known, errors, stopped)


def run_planned(
    folder: SweepFolder,
    spec: SweepSpec,
    trials: list[Trial],
    address: str | None,
    max_concurrent: int | None,
    num_cpus: int | None,
) -> None:
    """Run the planned trials that are not done yet."""
    states = {t.id: folder.trial_state(t.id) for t in trials}
    for t in trials:
        if not states[t.id]:
            mark(folder.trial(t.id), t.record(), status="pending")
    todo = [t for t in trials if states[t.id].get("status") not in DONE]
    print(f"sweep {folder.path}: {len(trials)} trials, {len(trials) - len(todo)} done, {len(todo)} to run", flush=True)
    if todo:
        with ray_session(address, num_cpus, spec.resources.torch_threads()):
            errors, stopped = run_trials(
                folder, todo, spec.resources, max_concurrent, address, spec.scheduler, spec.metric
            )
        settle(folder, todo, errors, stopped)
