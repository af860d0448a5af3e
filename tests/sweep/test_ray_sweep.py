"""A real sweep on a local Ray (2 CPUs, tiny trials), as a user runs it: SIGTERM midway stops it (exit 130, trials
left to resume); the same command continues it: interrupted trials resume from their checkpoints, finished ones are
not rerun (files untouched), a diverging trial is recorded failed while the others finish (exit 1), and no row is
duplicated; a third run has nothing left to do. The summary agrees with the rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from biocircuits.app.cli import main  # noqa: E402
from biocircuits.app.sweep.folder import SweepFolder  # noqa: E402
from biocircuits.train.run_folder import RunFolder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = (
    "name: tiny\nconstraints: bp.yaml\ndata: {name: digits}\nmodel: {name: mlp, kwargs: {hidden: [8]}}\n"
    "train: {steps: 300, batch_size: 32, eval_every: 100, checkpoint_every: 5, log_every: 5, "
    "probe_every: null, plots: false, progress: false}\n"
)
SWEEP = (
    "experiment: exp.yaml\nvariants:\n  - {name: base, set: {}}\n  - {name: diverge, set: {optim.lr: 1.0e+38}}\n"
    "seeds: [0, 1]\nresources: {cpu: 1}\n"
)


def sweep_command(path: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "biocircuits", "sweep", str(path), "--output", str(out)]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}


def mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def states(out: SweepFolder) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text()).get("status") for p in out.path.glob("trials/*/trial.json")}


def stop_midway(path: Path, out: SweepFolder) -> None:
    """Start the sweep, SIGTERM it once a trial has written a checkpoint; it stops cleanly with exit 130."""
    proc = subprocess.Popen(
        sweep_command(path, out.path), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.parent.joinpath("trial.json").is_file() for p in out.path.glob("trials/*/checkpoint.pt")):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output


@pytest.mark.slow
def test_sigterm_then_the_same_command_continues_without_loss_or_rerun(tmp_path, capsys):
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    out = SweepFolder(tmp_path / "out")
    stop_midway(path, out)
    stopped = states(out)
    left = [t for t, s in stopped.items() if s not in ("finished", "failed")]
    assert left and set(stopped.values()) & {"interrupted"}, stopped  # the signal came while trials ran
    assert set(stopped.values()) <= {"interrupted", "pending", "finished", "failed"}
    done_before = {t: mtimes(out.trial(t)) for t, s in stopped.items() if s in ("finished", "failed")}

    again = subprocess.run(
        sweep_command(path, out.path), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 1, again.stdout + again.stderr  # the diverging trials failed, all recorded
    rows = json.loads((out.path / "results.json").read_text())
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("base", 0, "finished"),
        ("base", 1, "finished"),
        ("diverge", 0, "failed"),
        ("diverge", 1, "failed"),
    ]
    assert all(r["steps"] == 300 for r in rows[:2]) and all("TrainingDiverged" in r["reason"] for r in rows[2:])
    assert all(r["started_at"] <= r["finished_at"] for r in rows)
    timelines = [json.loads((Path(r["run_dir"]) / "trial.json").read_text())["timeline"] for r in rows]
    assert all(t["torch_threads"] == 1 for t in timelines)  # one torch thread per 1-CPU trial, in its worker
    assert all(t["worker_pid"] != os.getpid() for t in timelines)
    assert not [p.name for p in out.path.glob("tune/**/*") if p.name in ("progress.csv", "result.json")]  # ours only
    for t, before in done_before.items():  # finished before the signal: not rerun, files untouched
        assert mtimes(out.trial(t)) == before, t
    resumed = [t for t in left if any(e["event"] == "resume" for e in RunFolder(out.trial(t)).read_history())]
    assert resumed  # at least the trial whose checkpoint we waited for continued from it
    for row in rows[:2]:  # no train row twice, resumed or not
        steps = [r["step"] for r in RunFolder(row["run_dir"]).read_metrics() if r["kind"] == "train"]
        assert len(steps) == len(set(steps)) and steps[-1] == 300

    record = json.loads(out.record.read_text())
    assert record["engine"] == "ray" and record["engine_version"] == ray.__version__
    assert record["sweep"]["seeds"] == [0, 1] and len(record["commands"]) == 2 and record["machine"]["cpus"]
    summary = json.loads((out.path / "summary.json").read_text())
    accs = [r["val_acc1"] for r in rows[:2]]
    assert summary["variants"]["base"]["mean"] == pytest.approx(sum(accs) / 2)
    assert summary["variants"]["base"]["sd"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
    assert summary["variants"]["diverge"]["n"] == 0 and summary["variants"]["diverge"]["status"] == {"failed": 2}

    before = mtimes(out.path / "trials")
    capsys.readouterr()
    assert main(["sweep", str(path), "--output", str(out.path)]) == 1  # a third time: nothing left to run
    assert "4 trials, 4 done, 0 to run" in capsys.readouterr().out
    assert mtimes(out.path / "trials") == before
    assert json.loads((out.path / "results.json").read_text()) == rows
