"""A real sweep on a local Ray (2 CPUs, tiny trials): every trial an ordinary run folder; an interrupted trial
resumes from its checkpoint, a diverging one is recorded failed while the others finish (exit 1); rerunning the same
command reruns nothing (files untouched) and writes no duplicate rows; the summary agrees with the rows."""

from __future__ import annotations

import json
import os

import pytest

ray = pytest.importorskip("ray")

from biocircuits.app.cli import main  # noqa: E402
from biocircuits.app.sweep import plan  # noqa: E402
from biocircuits.app.sweep.folder import SweepFolder  # noqa: E402
from biocircuits.config.experiment import Experiment  # noqa: E402
from biocircuits.train.run_folder import RunFolder  # noqa: E402
from biocircuits.train.trainer import run_experiment  # noqa: E402

SWEEP = ("experiment: exp.yaml\nvariants:\n  - {name: base, set: {}}\n  - {name: diverge, set: {optim.lr: 1.0e+38}}\n"
         "seeds: [0, 1]\nresources: {cpu: 1}\n")


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sweep_runs_resumes_records_failures_and_continues(sweep_dir, local_ray, capsys):
    path = sweep_dir / "sweep.yaml"
    path.write_text(SWEEP)
    out = SweepFolder(sweep_dir / "out")
    _, _, trials = plan(path)
    first = trials[0]  # interrupted at step 3 (as a killed sweep leaves it): the sweep must resume it
    short = first.experiment.model_dump(mode="json")
    short["train"]["steps"] = 3
    run_experiment(Experiment.from_dict(short, file=first.experiment.source), out.trial(first.id))

    assert main(["sweep", str(path), "--output", str(out.path)]) == 1  # the diverging trials failed
    rows = json.loads((out.path / "results.json").read_text())
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("base", 0, "finished"), ("base", 1, "finished"), ("diverge", 0, "failed"), ("diverge", 1, "failed")]
    assert all(r["steps"] == 6 for r in rows[:2]) and all("TrainingDiverged" in r["reason"] for r in rows[2:])
    assert all(r["started_at"] <= r["finished_at"] for r in rows)
    history = RunFolder(out.trial(first.id)).read_history()
    assert [e["event"] for e in history][-2:] == ["start", "resume"] and history[-1]["step"] == 3
    record = json.loads((out.record).read_text())
    assert record["engine"] == "ray" and record["engine_version"] == ray.__version__
    assert record["trials"] == [t.id for t in trials] and record["sweep"]["seeds"] == [0, 1]
    for row in rows:  # every trial an ordinary run folder
        assert (out.path / "trials" / row["trial"] / "config.yaml").is_file()

    summary = json.loads((out.path / "summary.json").read_text())
    accs = [r["val_acc1"] for r in rows[:2]]
    mean = sum(accs) / 2
    assert summary["variants"]["base"]["mean"] == pytest.approx(mean)
    assert summary["variants"]["base"]["sd"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
    assert summary["variants"]["diverge"]["n"] == 0

    before = mtimes(out.path / "trials")
    capsys.readouterr()
    assert main(["sweep", str(path), "--output", str(out.path)]) == 1  # the same command: nothing left to run
    assert "4 trials, 4 done, 0 to run" in capsys.readouterr().out
    assert mtimes(out.path / "trials") == before
    assert json.loads((out.path / "results.json").read_text()) == rows
    assert len(json.loads(out.record.read_text())["commands"]) == 2
