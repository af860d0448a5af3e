"""A trial as the engine runs it, without Ray: its ``trial.json`` through a run (finished), a stop the engine makes
by raising ``SystemExit`` in ``report`` (``stopped`` under a scheduler, ``interrupted`` otherwise: it continues on a
rerun), and the scheduler built from the sweep file."""

from __future__ import annotations

import json
import os

import pytest
import torch

from biocircuits.app.sweep import plan
from biocircuits.app.sweep.trial import train_trial


def one_trial(sweep_dir, extra: str = ""):
    path = sweep_dir / "sweep.yaml"
    path.write_text("experiment: exp.yaml\nseeds: [5]\n" + extra)
    spec, _, trials = plan(path)
    return spec, trials[0]


def run(sweep_dir, trial, report=None, scheduler=None):
    folder = sweep_dir / "out" / trial.id
    return folder, train_trial(
        folder,
        trial.record(),
        trial.experiment.model_dump(mode="json"),
        trial.experiment.source,
        threads=1,
        report=report,
        scheduler=scheduler,
    )


@pytest.mark.parametrize(("scheduler", "reported"), [("asha", [3, 6]), (None, [6])])
def test_a_trial_reports_what_the_engine_uses_and_records_its_run(sweep_dir, scheduler, reported):
    _, trial = one_trial(sweep_dir)
    reports, threads = [], torch.get_num_threads()
    folder, state = run(sweep_dir, trial, report=reports.append, scheduler=scheduler)
    assert torch.get_num_threads() == threads  # the process-wide setting is the engine worker's, not the run's
    assert [r["step"] for r in reports] == reported  # every evaluation only for a scheduler; else the final one
    assert set(reports[0]) == {"step", "val_loss", "val_acc1", "val_acc5"}
    assert state["status"] == "finished" and state["seed"] == 5 and state["attempts"] == 1
    assert state["started_at"] <= state["finished_at"]
    assert json.loads((folder / "summary.json").read_text())["val_acc1"] == reports[-1]["val_acc1"]


def test_a_trial_records_the_timeline_of_its_stages(sweep_dir):
    _, trial = one_trial(sweep_dir)
    folder, state = run(sweep_dir, trial, report=lambda metrics: None)
    times = state["timeline"]
    order = ["imported_at", "entered_at", "built_at", "first_step_at", "last_step_at", "trained_at"]
    stamps = [times[k] for k in order] + [state["finished_at"]]
    assert stamps == sorted(stamps) and times["worker_started_at"] <= times["imported_at"]
    assert times["worker_pid"] == os.getpid() and times["torch_threads"] == torch.get_num_threads()
    # 6 steps, evaluations at 3 and 6, checkpoints at 3 and 6 (the final save rewrites step 6), one final report
    assert (times["steps"], times["evaluations"], times["checkpoints"], times["reports"]) == (6, 2, 2, 1)
    assert times["report_s"] >= 0
    _, again = run(sweep_dir, trial)  # a rerun of a finished trial: resumes at step 6, takes no step, no report
    assert again["timeline"]["steps"] == 0 and "reports" not in again["timeline"]
    assert again["timeline"]["entered_at"] > times["trained_at"]


@pytest.mark.parametrize(("scheduler", "status"), [("asha", "stopped"), (None, "interrupted")])
def test_a_stop_by_the_engine_is_recorded(sweep_dir, scheduler, status):
    _, trial = one_trial(sweep_dir)

    def report(metrics):
        raise SystemExit(0)  # what Ray Tune's report does to a trial it ends

    with pytest.raises(SystemExit):
        run(sweep_dir, trial, report=report, scheduler=scheduler)
    state = json.loads((sweep_dir / "out" / trial.id / "trial.json").read_text())
    assert state["status"] == status and (state.get("finished_at") is not None) == (scheduler is not None)
    if scheduler is None:  # it continues from its checkpoint (written at step 3) on a rerun
        _, again = run(sweep_dir, trial)
        assert again["status"] == "finished" and again["attempts"] == 2


def test_asha_from_the_sweep_file(sweep_dir):
    pytest.importorskip("ray")
    from biocircuits.app.sweep.engine import build_scheduler

    spec, _ = one_trial(sweep_dir, "metric: val_loss\nscheduler: {name: asha, grace_period: 2, reduction_factor: 2}\n")
    asha = build_scheduler(spec.scheduler, spec.metric)
    assert (asha.metric, asha._mode, asha._time_attr) == ("val_loss", "min", "training_iteration")
    assert asha._reduction_factor == 2 and [b._rungs[-1][0] for b in asha._brackets] == [2]
    assert one_trial(sweep_dir, "scheduler: asha\n")[0].scheduler.grace_period == 1
    assert build_scheduler(None, "val_acc1") is None
