"""The loop's callbacks: hooks in order with the documented figures, state saved and restored on resume, early
stopping, a user's own metric rows, torch's global flags restored after the run."""

from __future__ import annotations

import json

import pytest
import torch

from biocircuits.errors import ConfigError
from biocircuits.train import Callback, EarlyStopping, run_experiment
from biocircuits.train.checkpoint import load_checkpoint

from .helpers import Kill, tiny_experiment


class Recorder(Callback):
    """Records every hook call; counts steps in its state (saved in the checkpoint)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.steps_seen = 0
        self.step_metrics: list[dict] = []

    def on_train_start(self, trainer) -> None:
        self.calls.append(("start", trainer.step))

    def on_step_end(self, trainer, metrics) -> None:
        self.calls.append(("step", metrics["step"]))
        self.steps_seen += 1
        self.step_metrics.append(dict(metrics))
        trainer.logger.log("my_metric", trainer.step, twice_loss=2 * metrics["loss"])

    def on_epoch_end(self, trainer) -> None:
        self.calls.append(("epoch", trainer.step))

    def on_eval_end(self, trainer, metrics) -> None:
        self.calls.append(("eval", metrics["step"]))

    def on_train_end(self, trainer, summary) -> None:
        self.calls.append(("end", summary["steps"]))

    def state_dict(self) -> dict:
        return {"steps_seen": self.steps_seen}

    def load_state_dict(self, state: dict) -> None:
        self.steps_seen = state["steps_seen"]


def test_hooks_are_called_in_order_with_the_step_figures(tmp_path):
    rec = Recorder()
    summary = run_experiment(
        tiny_experiment(tmp_path, steps=12, eval_every=5, log_every=4), tmp_path / "run", callbacks=[rec]
    )
    assert rec.calls[0] == ("start", 0)
    assert [s for kind, s in rec.calls if kind == "step"] == list(range(1, 13))
    # evaluations at the interval and once at the end (step 12 was not an evaluation step)
    assert [s for kind, s in rec.calls if kind == "eval"] == [5, 10, 12]
    assert rec.calls[-1] == ("end", 12) and summary["stopped_early"] is None
    # the step's figures: the loss is the mean over the step's samples, samples = batch size on one process
    first = rec.step_metrics[0]
    assert first["samples"] == 32 and 0 <= first["correct1"] <= first["correct5"] <= 32
    assert first["epoch"] == pytest.approx(1 / summary["steps"] * summary["epochs"])
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["kind"] == "my_metric"]
    assert [r["step"] for r in mine] == list(range(1, 13))
    assert mine[0]["twice_loss"] == pytest.approx(2 * first["loss"])
    # the train row at step 4 is the sample-weighted mean of steps 1-4 (every step has 32 samples)
    row4 = next(r for r in rows if r["kind"] == "train" and r["step"] == 4)
    assert row4["loss"] == pytest.approx(sum(m["loss"] for m in rec.step_metrics[:4]) / 4, rel=1e-12)
    assert row4["acc1"] == pytest.approx(100 * sum(m["correct1"] for m in rec.step_metrics[:4]) / 128, rel=1e-12)


def test_callback_state_is_saved_and_restored_on_resume(tmp_path):
    exp = tiny_experiment(tmp_path, steps=10, eval_every=5)
    first = Recorder()
    assert run_experiment(exp, tmp_path / "run", callbacks=[first, Kill(6)])["interrupted"]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["callbacks"]["Recorder"] == {"steps_seen": 6}
    second = Recorder()
    run_experiment(exp, tmp_path / "run", resume=True, callbacks=[second])
    assert second.steps_seen == 10  # 6 restored + 4 seen after the resume
    assert second.calls[0] == ("start", 6)


def _stopping_exp(tmp_path):
    # min_delta 1000: only the first evaluation counts as an improvement, so the third evaluation stops the run
    return tiny_experiment(tmp_path, steps=30, eval_every=2, checkpoint_every=1)


def test_early_stopping_ends_a_finished_run(tmp_path):
    summary = run_experiment(
        _stopping_exp(tmp_path), tmp_path / "run", callbacks=[EarlyStopping("acc1", patience=2, min_delta=1000.0)]
    )
    assert summary["steps"] == 6 and "did not improve" in summary["stopped_early"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 6
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 6


def test_early_stopping_resumes_where_a_straight_run_stops(tmp_path):
    """Killed after the second evaluation (one evaluation without improvement), the resumed run must stop at the
    third evaluation (step 6) as the straight run did; without its restored state it would stop at step 10."""
    exp = _stopping_exp(tmp_path)
    stop = EarlyStopping("acc1", patience=2, min_delta=1000.0)
    assert run_experiment(exp, tmp_path / "run", callbacks=[stop, Kill(5)])["interrupted"]
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["callbacks"]["EarlyStopping"]
    assert saved["bad"] == 1 and saved["best"] > -1e9
    summary = run_experiment(
        exp, tmp_path / "run", resume=True, callbacks=[EarlyStopping("acc1", patience=2, min_delta=1000.0)]
    )
    assert summary["steps"] == 6 and summary["stopped_early"]


@pytest.mark.parametrize("kwargs,key", [({"monitor": "accuracy"}, "monitor"), ({"patience": 0}, "patience")])
def test_early_stopping_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        EarlyStopping(**kwargs)
    assert err.value.key == key


def test_global_torch_flags_hold_during_the_run_and_are_restored_after_it(tmp_path):
    class Flags(Callback):
        seen: list[bool] = []

        def on_step_end(self, trainer, metrics) -> None:
            self.seen.append(torch.are_deterministic_algorithms_enabled())

    assert not torch.are_deterministic_algorithms_enabled()
    run_experiment(tiny_experiment(tmp_path, steps=2), tmp_path / "run", callbacks=[Flags()])  # deterministic: true
    assert Flags.seen == [True, True]
    assert not torch.are_deterministic_algorithms_enabled()
