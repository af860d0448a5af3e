"""Progress lines for log files (``biocircuits/train/log_lines.py``): the figures of each line against the step
metrics, the interval, the switch, and the line naming a failing rank."""

from __future__ import annotations

import re

import pytest

from biocircuits.train import Callback, run_experiment
from biocircuits.train.distributed import DistInfo
from biocircuits.train.log_lines import duration, ranked_failures, status_line

from ..train.helpers import tiny_experiment

LINE = re.compile(
    r"step (\d+)/(\d+) epoch ([\d.]+) \| ([\d.]+) img/s \| data wait (\d+)% \| loss ([\d.]+) \| "
    r"host ([\d.]+) GiB \| ETA (\S+)"
)


class Steps(Callback):
    def __init__(self) -> None:
        self.metrics: list[dict] = []

    def on_step_end(self, trainer, metrics) -> None:
        self.metrics.append(dict(metrics))


def test_status_line_figures_by_hand():
    window = {"samples": 64.0, "data_s": 1.0, "compute_s": 3.0, "loss_sum": 64 * 2.5}
    line = status_line(10, 100, 0.5, window, world=2, window_s=4.0, run_s=20.0, run_steps=10, memory="host 1.00 GiB")
    m = LINE.search(line)
    assert m is not None, line
    # images/s = 2 ranks * 64 / 4 s; data share = 1 / (1 + 3); ETA = 90 steps * 2 s
    assert m.groups() == ("10", "100", "0.50", "32.0", "25", "2.5000", "1.00", "0:03:00")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00:00"), (3661.4, "1:01:01"), (90061, "1d 1:01:01"), (float("nan"), "?"), (float("inf"), "?")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_a_line_per_step_at_interval_zero_matches_the_step_metrics(tmp_path, capsys):
    steps = Steps()
    run_experiment(
        tiny_experiment(tmp_path, steps=6, eval_every=None, log_interval_s=0.0), tmp_path / "run", callbacks=[steps]
    )
    out = capsys.readouterr().out  # captured: not a terminal, so the lines are on by default
    lines = [LINE.search(line) for line in out.splitlines() if LINE.search(line)]
    assert out.splitlines()[0].startswith("training tiny: steps 0/6, world 1")
    assert [int(m.group(1)) for m in lines] == list(range(1, 7))
    for m, metrics in zip(lines, steps.metrics, strict=True):
        share = 100 * metrics["data_s"] / (metrics["data_s"] + metrics["compute_s"])
        assert m.group(5) == f"{share:.0f}"
        assert m.group(6) == f"{metrics['loss']:.4f}"
        assert m.group(3) == f"{metrics['epoch']:.2f}"
    rows = [r for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"train"' in r]
    assert rows and all('"data_share"' in r for r in rows)


def test_long_interval_prints_the_last_step_only_and_the_switch_turns_it_off(tmp_path, capsys):
    run_experiment(tiny_experiment(tmp_path, steps=5, log_interval_s=3600.0), tmp_path / "a")
    lines = [m.group(1) for line in capsys.readouterr().out.splitlines() if (m := LINE.search(line))]
    assert lines == ["5"]
    run_experiment(tiny_experiment(tmp_path, steps=5, log_interval_s=0.0, log_lines=False), tmp_path / "b")
    assert not LINE.search(capsys.readouterr().out)


def test_a_failure_names_its_rank(capsys):
    class Trainer:
        step = 7

    with pytest.raises(ValueError, match="boom"), ranked_failures(DistInfo(rank=1, world=2, local_rank=1)) as failure:
        failure.where = Trainer()
        raise ValueError("boom\nsecond line")
    err = capsys.readouterr().err
    assert re.fullmatch(r"rank 1 of 2 \(local rank 1 on \S+\) failed at step 7: ValueError: boom\n", err), err
    with pytest.raises(KeyError), ranked_failures(DistInfo(rank=0, world=2)):  # before the trainer exists: no step
        raise KeyError("x")
    assert re.fullmatch(r"rank 0 of 2 \(local rank 0 on \S+\) failed: KeyError: 'x'\n", capsys.readouterr().err)
    with pytest.raises(ValueError), ranked_failures(DistInfo()):  # one process: the CLI's message suffices
        raise ValueError("single")
    assert capsys.readouterr().err == ""
