"""Starting from saved weights (``model.checkpoint``): a plain state_dict or a biocircuits checkpoint, loaded before
``bc.apply`` (so fa ``init: signed`` draws B from the loaded W), and a clear error for a file that does not fit."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from biocircuits.app.cli import main
from biocircuits.config.experiment import Experiment
from biocircuits.errors import ConfigError
from biocircuits.train import distributed
from biocircuits.train.build import build_run
from biocircuits.train.trainer import run_experiment

LINEARS = ("1", "3")  # mlp(hidden=[16]) on digits: Flatten, Linear(64, 16), ReLU, Linear(16, 10)


def experiment(tmp_path, constraints, **model) -> dict:
    return {
        "name": "w",
        "constraints": constraints,
        "data": {"name": "digits"},
        "model": {"name": "mlp", "kwargs": {"hidden": [16]}, **model},
        "train": {"steps": 2, "batch_size": 32, "probe_every": None, "plots": False, "log_every": 1},
        "output": str(tmp_path / "runs"),
    }


def saved_state(tmp_path) -> tuple[dict[str, torch.Tensor], str]:
    """A state_dict unlike any the run would draw itself (its own seed, scaled), saved with torch.save."""
    gen = torch.Generator().manual_seed(123)
    state = {
        "1.weight": torch.randn(16, 64, generator=gen),
        "1.bias": torch.randn(16, generator=gen),
        "3.weight": torch.randn(10, 16, generator=gen),
        "3.bias": torch.randn(10, generator=gen),
    }
    torch.save(state, tmp_path / "pretrained.pt")
    return state, "pretrained.pt"


def built(exp: Experiment):
    try:
        return build_run(exp).module
    finally:
        distributed.teardown()


def test_run_starts_from_a_state_dict_and_signed_fa_draws_b_from_it(tmp_path):
    state, rel = saved_state(tmp_path)
    spec = {"feedback": {"rule": "fa", "options": {"init": "signed"}}}
    exp = Experiment.from_dict(experiment(tmp_path, spec, checkpoint=rel), file=str(tmp_path / "exp.yaml"))
    module = built(exp)
    for name in LINEARS:
        layer = module.get_submodule(name)
        w = state[f"{name}.weight"]
        assert torch.equal(layer.weight, w) and torch.equal(layer.bias, state[f"{name}.bias"])
        # Xiao et al.'s signed init, by hand: B = sign(W_loaded) / sqrt(fan_in) for a linear layer
        assert torch.equal(layer.feedback_weight, torch.sign(w) * (1.0 / math.sqrt(w.shape[1])))
    assert exp.resolved_dict()["model"]["checkpoint"] == str((tmp_path / rel).resolve())


def test_fine_tune_from_a_biocircuits_checkpoint_with_reparametrised_dale(tmp_path):
    """A run under Dale (softplus reparametrisation: W = s * softplus(V)) leaves a checkpoint; a bp run started
    from it holds W as computed by hand from the checkpoint's latent V and signs s, and trains."""
    dale = {"dale": {"enforce": "softplus"}}
    first = Experiment.from_dict(experiment(tmp_path, dale), file=str(tmp_path / "a.yaml"))
    run_experiment(first, tmp_path / "first")
    ckpt = torch.load(tmp_path / "first" / "checkpoint.pt", weights_only=True)["model"]
    # "1" is exempt (<input>): a plain weight; "3" is reparametrised
    expected = {
        "1": ckpt["1.weight"],
        # softplus as the enforcer computes it (#27): log1p(e^V) in float64, rounded once
        "3": ckpt["3.parametrizations.weight.0.sign"]
        * torch.log1p(torch.exp(ckpt["3.parametrizations.weight.original"].double())).float(),
    }
    second = experiment(tmp_path, "bp.yaml", checkpoint=str(tmp_path / "first" / "checkpoint.pt"))
    module = built(Experiment.from_dict(second))
    for name in LINEARS:
        assert torch.equal(module.get_submodule(name).weight, expected[name])
        assert torch.equal(module.get_submodule(name).bias, ckpt[f"{name}.bias"])
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(second))
    assert main(["run", str(tmp_path / "b.yaml"), "--output", str(tmp_path / "second")]) == 0


def test_weights_that_do_not_match_are_listed(tmp_path, capsys):
    state, rel = saved_state(tmp_path)
    state["extra.weight"] = state.pop("3.bias")
    state["1.weight"] = state["1.weight"][:, :10]
    torch.save(state, tmp_path / "bad.pt")
    exp = Experiment.from_dict(experiment(tmp_path, "bp.yaml", checkpoint="bad.pt"), file=str(tmp_path / "e.yaml"))
    with pytest.raises(ConfigError) as err:
        built(exp)
    text = str(err.value)
    assert err.value.key == "model.checkpoint"
    assert "missing: 3.bias" in text and "unexpected: extra.weight" in text
    assert "wrong shape: 1.weight (16, 10) for (16, 64)" in text
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(experiment(tmp_path, "bp.yaml", checkpoint="bad.pt")))
    for command in ("run", "validate"):
        assert main([command, str(tmp_path / "e.yaml")]) == 2
        assert "missing: 3.bias" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (["not", "a", "dict"], "holds no state_dict"),
        (torch.nn.Linear(2, 2), "unreadable weights file"),  # a pickled module: weights_only refuses it
    ],
)
def test_files_that_hold_no_state_dict(tmp_path, content, words):
    torch.save(content, tmp_path / "w.pt")
    exp = Experiment.from_dict(experiment(tmp_path, "bp.yaml", checkpoint="w.pt"), file=str(tmp_path / "e.yaml"))
    with pytest.raises(ConfigError, match=words):
        built(exp)
    with pytest.raises(ConfigError, match="checkpoint file not found"):
        built(Experiment.from_dict(experiment(tmp_path, "bp.yaml", checkpoint="none.pt")))
