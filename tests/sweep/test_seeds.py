"""A seed means every random draw: ``train.seed`` gives the random feedback matrices (fa, dfa, frSF: the buffers
``feedback_weight`` and ``direct_feedback``) and the
transforms' noise their seed unless the spec sets one, so two seeds of a sweep differ in B too; a seed the spec
sets stays, and a saved config (every seed explicit) rebuilds the same B."""

from __future__ import annotations

import pytest
import torch

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.models.registry import build_model

SPECS = {
    "fa": "feedback_alignment.yaml",
    "dfa": {"feedback": {"rule": "dfa"}},
    "frSF": "dale_random_sign_symmetry.yaml",
}


def experiment(constraints, seed: int) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "x",
            "constraints": constraints,
            "train": {"seed": seed},
            "model": {"name": "mlp", "kwargs": {"hidden": [16, 16]}},
        }
    )


def feedback_weights(exp: Experiment) -> dict[str, torch.Tensor]:
    torch.manual_seed(exp.train.seed)
    model = build_model(exp.model.name, (1, 8, 8), 10, exp.model.kwargs)
    bc.apply(model, exp.resolved_constraints())
    return {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("feedback_weight", "direct_feedback"))}


@pytest.mark.parametrize("name", SPECS)
def test_two_seeds_give_different_feedback_weights(name):
    b0, b1 = feedback_weights(experiment(SPECS[name], 0)), feedback_weights(experiment(SPECS[name], 1))
    assert b0 and set(b0) == set(b1)
    for key in b0:
        assert not torch.equal(b0[key], b1[key]), key
    again = experiment(SPECS[name], 1)  # the same seed, the same B; and so from the saved config
    saved = Experiment.from_dict(again.resolved_dict())
    for key, value in feedback_weights(saved).items():
        assert torch.equal(value, b1[key]), key


def test_seeds_the_spec_sets_stay():
    spec = {"feedback": {"rule": "fa", "seed": 3}, "phases": {"seed": 4, "error_noise": 0.1}}
    e0, e1 = experiment(spec, 0), experiment(spec, 1)
    assert e1.resolved_constraints().feedback.seed == 3 and e1.resolved_constraints().phases.seed == 4
    b0, b1 = feedback_weights(e0), feedback_weights(e1)
    assert all(torch.equal(b0[k], b1[k]) for k in b0)


def test_unset_seeds_follow_train_seed_and_are_saved():
    exp = experiment({"feedback": {"rule": "fa"}, "phases": {"error_noise": 0.1}}, 7)
    resolved = exp.resolved_dict()["constraints"]
    assert resolved["feedback"]["seed"] == 7 and resolved["phases"]["seed"] == 7
    assert isinstance(exp.constraints, bc.Constraints) and exp.constraints.feedback.seed == 0  # left alone
