"""Online rules trained from the experiment file through the trainer (train.build's one dispatch): the run reports
the sequence loss, keeps Dale's column signs, and a resumed run (noise mid-stream) is bit-identical."""

from pathlib import Path

import pytest
import torch

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.recurrent import OnlineStep
from biocircuits.train.build import build_run
from biocircuits.train.checkpoint import load_checkpoint
from biocircuits.train.targets import task_loss
from biocircuits.train.trainer import run_experiment

from ..train.helpers import Kill

RECIPE = Path(__file__).resolve().parents[2] / "experiments" / "rnn_perceptual_decision.yaml"
TINY = {
    "data.train_size": 64,
    "data.val_size": 16,
    "model.kwargs.n_hidden": 10,
    "train.batch_size": 16,
    "train.plots": False,
    "train.log_every": 1,
    "optim.lr": 0.05,
    "model.kwargs.noise_std": 0.1,
}


def tiny(rule: str, **sets) -> Experiment:
    return Experiment.from_yaml(RECIPE, {**TINY, "constraints.feedback.rule": rule, **sets})


@pytest.mark.parametrize("rule", ["eprop", "rflo"])
def test_the_trainer_steps_through_the_learner(rule):
    parts = build_run(tiny(rule))
    assert isinstance(parts.phased, OnlineStep)
    model = parts.module
    before = model.recurrent.weight.detach().clone()
    for x, y in list(parts.train_loader)[:3]:
        ctx = parts.phased.forward(x, y, 0)
        assert torch.isfinite(ctx.loss) and ctx.loss.grad_fn is None and model.recurrent.weight.grad is not None
        parts.phased.backward(ctx)
        parts.phased.update(ctx)
    assert not torch.equal(model.recurrent.weight.detach(), before)
    assert bc.audit(model).violations == 0


def test_learner_loss_is_the_task_loss():
    parts = build_run(tiny("eprop", **{"model.kwargs.noise_std": 0.0}))
    x, y = next(iter(parts.train_loader))
    ctx = parts.phased.forward(x, y, 0)
    assert torch.allclose(ctx.loss, task_loss(parts.module(x), y), atol=1e-6, rtol=0)
    assert torch.allclose(ctx.outputs, parts.module(x), atol=1e-6, rtol=0)


def test_online_resume_is_bit_identical(tmp_path):
    sets = {"train.deterministic": True, "train.steps": 7}  # 4 steps an epoch: stop mid-epoch, noise mid-stream
    assert run_experiment(tiny("eprop", **sets), tmp_path / "a", callbacks=[Kill(5)])["interrupted"]
    run_experiment(tiny("eprop", **sets), tmp_path / "a", resume=True)
    summary = run_experiment(tiny("eprop", **sets), tmp_path / "b")
    assert summary["rule"] == "eprop" and summary["steps"] == 7
    resumed, straight = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in ("a", "b"))
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


def test_lif_recipe_runs(tmp_path):
    path = RECIPE.with_name("lif_perceptual_decision.yaml")
    assert path.read_text().startswith("#")
    sets = {k: v for k, v in TINY.items() if k != "model.kwargs.noise_std"}
    exp = Experiment.from_yaml(path, {**sets, "train.steps": 3})
    summary = run_experiment(exp, tmp_path / "run")
    assert summary["steps"] == 3 and summary["rule"] == "eprop"
