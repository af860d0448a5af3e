"""Rate RNNs trained from experiment files: Dale's column signs on the recurrent and readout weights hold under every
enforcer and rule, the signs are the model's E/I units, and a resumed run is bit-identical."""

from pathlib import Path

import pytest
import torch

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.dale import SPEC_KEYS
from biocircuits.train.build import build_run
from biocircuits.train.checkpoint import load_checkpoint
from biocircuits.train.trainer import run_experiment

from ..train.helpers import Kill

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "experiments").glob("rnn_*.yaml"))
TINY = {
    "data.train_size": 64,
    "data.val_size": 16,
    "model.kwargs.n_hidden": 10,
    "train.batch_size": 16,
    "train.plots": False,
    "train.log_every": 1,
    "optim.lr": 0.05,
}


def tiny(path: Path, **sets) -> Experiment:
    return Experiment.from_yaml(path, {**TINY, **sets})


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_and_keeps_dale(tmp_path, path):
    assert path.read_text().startswith("#")
    summary = run_experiment(tiny(path, **{"train.steps": 2, "train.probe_every": 2}), tmp_path / "run")
    assert summary["steps"] == 2 and summary["dale"] is True


CASES = [("fa", enforce) for enforce in SPEC_KEYS["enforce"].names()] + [("sign_symmetry", "project")]


@pytest.mark.parametrize(("rule", "enforce"), CASES, ids=[f"{r}-{e}" for r, e in CASES])
def test_every_enforcer_keeps_the_column_signs(rule, enforce):
    exp = tiny(
        ROOT / "experiments" / "rnn_perceptual_decision.yaml",
        **{"constraints.feedback.rule": rule, "constraints.dale.enforce": enforce, "model.kwargs.noise_std": 0.1},
    )
    parts = build_run(exp)
    model = parts.module
    for name in ("recurrent", "readout"):
        assert torch.equal(getattr(model, name).dale_sign, model.unit_sign), name
    assert bc.audit(model).violations == 0
    before = model.recurrent.weight.detach().clone()
    for x, y in list(parts.train_loader)[:3]:
        ctx = parts.phased.forward(x, y, 0)
        parts.phased.backward(ctx)
        parts.phased.update(ctx)
    assert not torch.equal(model.recurrent.weight.detach(), before)
    assert bc.audit(model).violations == 0
    for layer in (model.recurrent, model.readout):
        assert bool((layer.weight * layer.dale_sign >= 0).all())


def test_resume_is_bit_identical(tmp_path):
    path = ROOT / "experiments" / "rnn_perceptual_decision.yaml"
    sets = {
        "constraints.feedback.rule": "fa",
        "model.kwargs.noise_std": 0.1,
        "train.deterministic": True,
        "train.steps": 5,
    }  # 4 steps an epoch: the stop at step 3 is mid-epoch, the noise RNG mid-stream
    assert run_experiment(tiny(path, **sets), tmp_path / "a", callbacks=[Kill(3)])["interrupted"]
    run_experiment(tiny(path, **sets), tmp_path / "a", resume=True)
    run_experiment(tiny(path, **sets), tmp_path / "b")
    resumed, straight = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in ("a", "b"))
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
