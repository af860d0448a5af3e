"""Atomic writes (biocircuits/core/atomic.py): the old file survives a failed write, no temp file is left, the data
and the folder are fsync'd; every file the runner writes goes through it."""

import json
import os
from pathlib import Path

import pytest
import torch

from biocircuits.core import atomic
from biocircuits.core.atomic import atomic_write, atomic_write_json, atomic_write_text, clean_stale_temps


@pytest.fixture
def fsyncs(monkeypatch):
    """Counts os.fsync calls (a real fsync has no effect a test can observe otherwise)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", counting)
    return calls


def test_write_replaces_the_file_and_fsyncs_data_and_folder(tmp_path, fsyncs):
    path = tmp_path / "a.txt"
    path.write_text("old")
    assert atomic_write(path, lambda f: f.write(b"new\n")) == path
    assert path.read_bytes() == b"new\n"
    assert len(fsyncs) == (2 if os.name == "posix" else 1)  # the temp file's data, then the folder's entry
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


class Boom(RuntimeError):
    pass


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, fsyncs):
    path = tmp_path / "a.json"
    path.write_text('{"old": 1}\n')

    def half(f):
        f.write(b'{"new": ')
        raise Boom("cut short")

    with pytest.raises(Boom):
        atomic_write(path, half)
    assert path.read_text() == '{"old": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert fsyncs == []  # nothing was committed


def test_an_interrupt_during_the_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")

    def interrupted(f):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_text() == "a: 1\n" and [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_text_and_json_helpers_create_folders_and_write_exactly(tmp_path):
    atomic_write_text(tmp_path / "sub" / "t.md", "# é\n")
    atomic_write_json(tmp_path / "sub" / "j.json", {"a": [1, 2]})
    assert (tmp_path / "sub" / "t.md").read_bytes() == "# é\n".encode()
    assert (tmp_path / "sub" / "j.json").read_text() == json.dumps({"a": [1, 2]}, indent=2) + "\n"


def test_clean_stale_temps_removes_only_this_files_temps(tmp_path):
    keep = [tmp_path / "x.pt", tmp_path / ".y.pt.abc.tmp"]
    stale = tmp_path / ".x.pt.abc123.tmp"
    for p in (*keep, stale):
        p.write_bytes(b"1")
    assert clean_stale_temps(tmp_path / "x.pt") == [stale]
    assert sorted(tmp_path.iterdir()) == sorted(keep)


def _runner_writes(folder: Path) -> None:
    """One of each file the runner and the commands write (checkpoint, history, summary, config, metrics rewrite,
    comparison table, a plot)."""
    from biocircuits.app.plots import plot_curves
    from biocircuits.train.checkpoint import save_checkpoint
    from biocircuits.train.logging import RunLogger
    from biocircuits.train.run_folder import RunFolder

    run = RunFolder(folder)
    logger = RunLogger(run)
    logger.log("train", 1, loss=1.0, acc1=10.0)
    logger.log("val", 2, loss=0.5, acc1=20.0)
    logger.truncate_after(2)
    logger.write_config({"name": "x"})
    logger.write_json(run.summary, {"val_acc1": 20.0})
    run.append_history({"event": "start"})
    save_checkpoint(run.checkpoint, {"x": torch.ones(1)})
    plot_curves([folder], folder)


def test_every_file_the_runner_writes_goes_through_the_helper(tmp_path, monkeypatch):
    written: list[str] = []
    real = atomic.atomic_write

    def recording(path, write):
        written.append(Path(path).name)
        return real(path, write)

    monkeypatch.setattr(atomic, "atomic_write", recording)
    for module in ("biocircuits.train.checkpoint", "biocircuits.app.plots"):
        monkeypatch.setattr(f"{module}.atomic_write", recording)
    _runner_writes(tmp_path)
    assert sorted(written) == sorted(
        ["metrics.jsonl", "config.yaml", "summary.json", "history.json", "checkpoint.pt", "curves.png"]
    )
    assert not list(tmp_path.glob(".*.tmp"))
