"""The project's own tables are sweep files: ``experiments/sweeps/paper_table.yaml`` and ``dale_deep.yaml`` expand to
exactly the trials the one-off scripts they replace (``benchmarks/paper_table.py``, ``benchmarks/dale_deep.py``,
removed) trained: the same experiment and the same resolved constraint spec for every (variant, seed). The scripts'
variant tables are copied here as the reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from biocircuits.app.sweep import plan
from biocircuits.config.experiment import Experiment

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "experiments" / "paper_mnist5k_resnet18.yaml"

# benchmarks/paper_table.py: label -> feedback section; each run: train.seed = feedback.seed = seed, 3 seeds
PAPER: dict[str, dict[str, Any]] = {
    "bp": {"rule": "bp"},
    "sign_symmetry_uSF": {"rule": "sign_symmetry"},
    "sign_symmetry_frSF": {"rule": "sign_symmetry", "options": {"magnitude": "random_fixed"}},
    "sign_symmetry_brSF": {"rule": "sign_symmetry", "options": {"magnitude": "random_batch"}},
    "sign_symmetry_bp_last": {"rule": "sign_symmetry", "overrides": {"fc": "bp"}},
    "fa": {"rule": "fa"},
    "fa_bp_last": {"rule": "fa", "overrides": {"fc": "bp"}},
    "dfa_channel_conv": {"rule": "dfa"},
    "dfa_full_conv": {"rule": "dfa", "options": {"conv": "full"}},
    "kolen_pollack": {"rule": "kolen_pollack"},
    "weight_mirror": {"rule": "weight_mirror"},
}

# benchmarks/dale_deep.py: label -> constraint spec, 8 epochs; the default table (10 variants x 3 seeds) and the
# ablations (seed 0)
OLD = {"residual": "signed"}
NEW = {"residual": "signed", "population_norm": "divisive", "norm_gamma": "nonnegative"}
SS = {"rule": "sign_symmetry", "options": {"magnitude": "paper"}}
FRSF = {"rule": "sign_symmetry", "options": {"magnitude": "random_fixed"}}
DANN = {"architecture": "dann", "norm_gamma": "nonnegative"}
SS_DANN = {"rule": "sign_symmetry", "options": {"magnitude": "weight_rms", "centre": True}}
DALE: dict[str, dict[str, Any]] = {
    "bp": {"feedback": {"rule": "bp"}},
    "sign_symmetry": {"feedback": SS},
    "Dale_old_bp": {"feedback": {"rule": "bp"}, "dale": OLD},
    "Dale_old_sign_symmetry": {"feedback": SS, "dale": OLD},
    "Dale_new_bp": {"feedback": {"rule": "bp"}, "dale": NEW},
    "Dale_new_sign_symmetry": {"feedback": SS, "dale": NEW},
    "sign_symmetry_frSF": {"feedback": FRSF},
    "Dale_new_sign_symmetry_frSF": {"feedback": FRSF, "dale": NEW},
    "DANN_bp": {"feedback": {"rule": "bp"}, "dale": DANN},
    "DANN_sign_symmetry_centred": {"feedback": SS_DANN, "dale": DANN},
}
ABLATIONS: dict[str, dict[str, Any]] = {
    "DANN_sign_symmetry_paper": {"feedback": SS, "dale": DANN},
    "DANN_sign_symmetry_weight_rms": {
        "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "weight_rms"}},
        "dale": DANN,
    },
    "DANN_sign_symmetry_centred_paper": {
        "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "paper", "centre": True}},
        "dale": DANN,
    },
    "DANN_sign_symmetry_centred_uncorrected": {
        "feedback": SS_DANN,
        "dale": {**DANN, "dann": {"corrected_updates": False}},
    },
    "DANN_bp_mean_row": {"feedback": {"rule": "bp"}, "dale": {**DANN, "dann": {"init": "mean_row"}}},
    "DANN_sign_symmetry_centred_mean_row": {"feedback": SS_DANN, "dale": {**DANN, "dann": {"init": "mean_row"}}},
}


def script_trial(spec: dict[str, Any], seed: int, sets: dict[str, Any]) -> Experiment:
    """A trial as the scripts built it: the recipe, their overrides, the seed, and the spec with feedback.seed."""
    spec = json.loads(json.dumps(spec))
    spec["feedback"]["seed"] = seed
    return Experiment.from_yaml(RECIPE, {**sets, "train.seed": seed, "constraints": spec})


def comparable(exp: Experiment) -> tuple[dict[str, Any], dict[str, Any]]:
    """The experiment without what only names or decorates a run (name, output folder, plots, progress bar), and
    its resolved constraint spec."""
    data = exp.model_dump(mode="json", exclude={"name", "output", "constraints"})
    data["train"] = {k: v for k, v in data["train"].items() if k not in ("plots", "progress")}
    return data, exp.resolved_constraints().model_dump(mode="json")


def expansion(sweep: str) -> dict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]]:
    _, _, trials = plan(ROOT / "experiments" / "sweeps" / sweep)
    return {(t.variant, t.seed): comparable(t.experiment) for t in trials}


@pytest.mark.parametrize(
    ("sweep", "variants", "seeds", "sets"),
    [
        ("paper_table.yaml", {k: {"feedback": v} for k, v in PAPER.items()}, [0, 1, 2], {}),
        ("dale_deep.yaml", DALE, [0, 1, 2], {"train.epochs": 8}),
        ("dale_deep_ablations.yaml", ABLATIONS, [0], {"train.epochs": 8}),
    ],
    ids=["paper_table", "dale_deep", "dale_deep_ablations"],
)
def test_sweep_file_expands_to_the_scripts_trials(sweep, variants, seeds, sets):
    got = expansion(sweep)
    want = {
        (label, seed): comparable(script_trial(spec, seed, sets)) for label, spec in variants.items() for seed in seeds
    }
    assert list(got) == list(want)
    for key in want:
        assert got[key] == want[key], key
