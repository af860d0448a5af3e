"""Nothing lost: a run folder is claimed (lock; an earlier run is refused, resumed after a config check, or moved
aside), poisoned state is never saved, torn metrics and corrupt images give clear answers. Each case checks by
hashes that no file of the earlier run changed."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from biocircuits.app.cli import main
from biocircuits.errors import CheckpointError, DataError, RunFolderError, TrainingDiverged
from biocircuits.train.checkpoint import load_checkpoint, save_checkpoint
from biocircuits.train.resume_check import check_resume
from biocircuits.train.run_folder import RunFolder
from biocircuits.train.trainer import Trainer, run_experiment

from .helpers import tiny_experiment, write_imagefolder

EXP = """name: tiny
constraints: bp.yaml
data: {name: digits}
model: {name: mlp, kwargs: {hidden: [16]}}
optim: {lr: 0.05}
train: {steps: 4, batch_size: 32, log_every: 2, eval_every: 2, probe_every: null, plots: false, seed: 0}
"""


def hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` except the lock file."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished 4-step run (copied by each test that changes it)."""
    root = tmp_path_factory.mktemp("finished")
    (root / "exp.yaml").write_text(EXP)
    assert main(["run", str(root / "exp.yaml"), "--output", str(root / "run")]) == 0
    return root


@pytest.fixture
def run(finished, tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """(experiment file, a copy of the finished run folder, its file hashes)."""
    shutil.copytree(finished, tmp_path / "w")
    return tmp_path / "w" / "exp.yaml", tmp_path / "w" / "run", hashes(tmp_path / "w" / "run")


def test_rerun_into_a_run_is_refused_and_changes_nothing(run, capsys):
    exp, folder, before = run
    assert main(["run", str(exp), "--output", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert hashes(folder) == before


def test_overwrite_moves_the_earlier_run_aside(run):
    exp, folder, before = run
    assert main(["run", str(exp), "--output", str(folder), "--overwrite", "--set", "train.steps=2"]) == 0
    aside = folder.with_name("run.old-1")
    assert hashes(aside) == before  # moved, not changed
    assert RunFolder(folder).read_summary()["steps"] == 2
    assert RunFolder(folder).read_history()[0]["earlier_run_moved_to"] == str(aside)
    assert main(["run", str(exp), "--output", str(folder), "--overwrite", "--set", "train.steps=2"]) == 0
    assert folder.with_name("run.old-2").is_dir() and hashes(aside) == before


@pytest.mark.parametrize(
    "change,key",
    [
        ("constraints.feedback.rule=fa", "constraints.feedback.rule"),
        ("train.batch_size=16", "train.batch_size"),
        ("data.name=synthetic", "data.name"),
        ("model.kwargs={hidden: [8]}", "model.kwargs.hidden"),
        ("train.seed=1", "train.seed"),
    ],
)
def test_resume_with_a_trajectory_change_is_refused_with_the_diff(run, capsys, change, key):
    exp, folder, before = run
    assert main(["run", str(exp), "--output", str(folder), "--resume", "--set", change]) == 2
    err = capsys.readouterr().err
    assert "would change the trajectory" in err and key in err and "Traceback" not in err, err
    assert hashes(folder) == before


def test_resume_with_safe_changes_continues_and_records_them(run):
    exp, folder, before = run
    assert (
        main(
            [
                "run",
                str(exp),
                "--output",
                str(folder),
                "--resume",
                "--set",
                "train.steps=6",
                "--set",
                "train.log_every=3",
            ]
        )
        == 0
    )
    f = RunFolder(folder)
    assert f.read_summary()["steps"] == 6 and f.read_config()["train"]["steps"] == 6
    events = f.read_history()
    assert [e["event"] for e in events] == ["start", "resume"]
    assert events[1]["step"] == 4 and events[1]["changes"]["train.steps"] == [4, 6]
    steps = [r["step"] for r in f.read_metrics() if r["kind"] == "train"]
    assert steps == sorted(set(steps))


def test_checkpoint_config_is_checked_too(run):
    _, folder, _ = run
    folder.joinpath("config.yaml").unlink()  # only the checkpoint's config is left to compare with
    exp = tiny_experiment(folder.parent, steps=4)
    with pytest.raises(RunFolderError, match="would change the trajectory"):
        run_experiment(exp, folder, resume=True)


def test_a_second_process_on_the_folder_is_refused(tmp_path, capsys):
    (tmp_path / "exp.yaml").write_text(EXP)
    folder = tmp_path / "run"
    folder.mkdir()
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)  # another open file description: as another process
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert main(["run", str(tmp_path / "exp.yaml"), "--output", str(folder)]) == 2
        assert "another process" in capsys.readouterr().err
        assert not RunFolder(folder).is_run() and not (folder / "checkpoint.pt").exists()
    finally:
        os.close(fd)


def test_output_path_that_is_a_file_is_exit_2(tmp_path, capsys):
    (tmp_path / "exp.yaml").write_text(EXP)
    (tmp_path / "f").write_text("x")
    for out in (tmp_path / "f", tmp_path / "f" / "run"):
        assert main(["run", str(tmp_path / "exp.yaml"), "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert "--output" in err and "file" in err and "Traceback" not in err


def test_poisoned_buffers_are_never_saved_and_the_message_says_what_is_kept(tmp_path):
    trainer = Trainer(tiny_experiment(tmp_path, steps=4), tmp_path / "run")
    trainer.save()
    good = hashes(tmp_path / "run")
    with torch.no_grad():
        next(trainer.module.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"non-finite values at step 0 in .*weight.*last good checkpoint"):
        trainer.save()
    assert hashes(tmp_path / "run") == good
    fresh = Trainer(tiny_experiment(tmp_path, steps=4), tmp_path / "run2")
    with torch.no_grad():
        next(fresh.module.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet"):
        fresh.save()
    assert not (tmp_path / "run2" / "checkpoint.pt").exists()


def test_torn_last_metrics_line_is_skipped_reported_and_resume_works(run, capsys):
    exp, folder, _ = run
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "kind": "tra')
    rows = RunFolder(folder).read_metrics()
    assert rows and all("kind" in r for r in rows) and "torn last line" in capsys.readouterr().err
    assert main(["plot", str(folder)]) == 0
    before = {k: v for k, v in hashes(folder).items() if k == "checkpoint.pt"}
    assert main(["run", str(exp), "--output", str(folder), "--resume", "--set", "train.steps=6"]) == 0
    assert before  # the resumed run rewrote metrics without the torn line
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)


def test_stale_temp_files_are_cleaned_on_the_next_save(tmp_path):
    path = tmp_path / "checkpoint.pt"
    stale = tmp_path / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(path, {"x": torch.ones(2)})
    assert not stale.exists() and load_checkpoint(path)["x"].sum() == 2


def test_corrupt_jpeg_is_a_clear_error_naming_the_file_and_keeps_a_checkpoint(tmp_path, capsys):
    root = write_imagefolder(tmp_path / "data", classes=2, per_class=8, size=16)
    bad = root / "train" / "class_1" / "img_3.JPEG"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: jpg\nconstraints: bp.yaml\ndata: {{name: imagefolder, root: {root}, image_size: 8}}\n"
        "model: {name: mlp, kwargs: {hidden: [8]}}\n"
        "train: {steps: 8, batch_size: 4, probe_every: null, plots: false, checkpoint_every: 1}\n"
    )
    assert main(["run", str(exp), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "unreadable image" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert "--resume" in err
    if (tmp_path / "run" / "checkpoint.pt").exists():  # it failed after step 0: the state of that step is kept
        assert "last good checkpoint" in err


def test_data_error_rebuilt_from_a_worker_keeps_only_the_message():
    text = (
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1\nbiocircuits.errors.DataError: /d/a.JPEG: unreadable image (OSError)'
    )
    assert str(DataError(text)) == "/d/a.JPEG: unreadable image (OSError)"


def test_resume_check_allows_only_safe_keys():
    saved = {"train": {"steps": 4, "batch_size": 32}, "constraints": {"feedback": {"rule": "bp"}}}
    assert check_resume(saved, {**saved, "train": {"steps": 9, "batch_size": 32}}, "c.yaml") == {"train.steps": [4, 9]}
    with pytest.raises(RunFolderError, match=r"train.batch_size: 32 -> 64"):
        check_resume(saved, {**saved, "train": {"steps": 4, "batch_size": 64}}, "c.yaml")


def test_resume_without_a_checkpoint_in_a_started_folder_suggests_overwrite(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("name: x\n")
    with pytest.raises(CheckpointError, match="--overwrite"):
        run_experiment(tiny_experiment(tmp_path), folder, resume=True)


def test_compare_into_a_folder_with_runs_is_refused_or_moved_aside(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXP.replace("steps: 4", "steps: 2"))
    out = tmp_path / "cmp"
    assert main(["compare", str(exp), "--rules", "bp", "--output", str(out)]) == 0
    before = hashes(out)
    assert main(["compare", str(exp), "--rules", "bp", "--output", str(out)]) == 2
    assert "already holds a comparison" in capsys.readouterr().err and hashes(out) == before
    assert main(["compare", str(exp), "--rules", "bp", "--output", str(out), "--overwrite"]) == 0
    assert hashes(out.with_name("cmp.old-1")) == before
