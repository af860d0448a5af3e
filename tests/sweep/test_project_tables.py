"""The project's own tables are sweep files: ``experiments/sweeps/paper_table.yaml`` and ``dale_deep.yaml`` expand to
exactly the trials the one-off scripts they replace (``benchmarks/paper_table.py``, ``benchmarks/dale_deep.py``,
removed) trained: the same experiment and the same resolved constraint spec for every (variant, seed). The scripts'
variant tables are copied here as the reference. At a smoke size, every variant trains as a sweep trial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from biocircuits.app.sweep import plan
from biocircuits.app.sweep.trial import train_trial
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
    # the script ran the mirror's defaults of the time, 64 draws after every step; the sweep file now sets them
    "weight_mirror": {"rule": "weight_mirror", "options": {"samples": 64, "mirror_every": 1}},
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
    # added after the script was retired (issue #24): the new setting without the population norm
    "Dale_nopool_bp": {"feedback": {"rule": "bp"}, "dale": {**OLD, "norm_gamma": "nonnegative"}},
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


def test_the_dann_presets_are_the_deep_dale_tables_settings():
    import biocircuits as bc

    specs = {
        t.variant: t.experiment.resolved_constraints()
        for t in plan(ROOT / "experiments/sweeps/dale_deep.yaml")[2]
        if t.seed == 0
    }
    for preset, label in (("dale_dann", "DANN_bp"), ("dale_dann_sign_symmetry", "DANN_sign_symmetry_centred")):
        want = bc.Constraints.from_yaml(ROOT / "constraints" / f"{preset}.yaml").model_dump()
        got = specs[label].model_dump()
        for section in ("feedback", "phases"):  # the sweep's trials record the seed that train.seed gives them
            got[section]["seed"] = want[section]["seed"]
        assert got == want, preset


SMOKE = {"train.steps": 1, "data.name": "digits", "data.resize": 16, "data.val_fraction": 0.02, "train.batch_size": 8}


@pytest.mark.parametrize(
    ("sweep", "names"), [("paper_table.yaml", None), ("dale_deep.yaml", ["Dale_old_bp", "DANN_sign_symmetry_centred"])]
)
def test_the_tables_variants_train_a_step_as_sweep_trials(tmp_path, sweep, names):
    data = yaml.safe_load((ROOT / "experiments" / "sweeps" / sweep).read_text())
    data.update(experiment=str(RECIPE), set={**data["set"], **SMOKE}, seeds=[0], baseline=None)
    data["variants"] = [v for v in data["variants"] if names is None or v["name"] in names]
    (tmp_path / sweep).write_text(yaml.safe_dump(data))
    trials = plan(tmp_path / sweep)[2]
    assert [t.variant for t in trials] == [v["name"] for v in data["variants"]]
    for t in trials:
        run = tmp_path / "trials" / t.id
        state = train_trial(run, t.record(), t.experiment.model_dump(mode="json"), t.experiment.source, threads=1)
        summary = json.loads((run / "summary.json").read_text())
        assert state["status"] == "finished" and summary["steps"] == 1 and 0.0 <= summary["val_acc1"] <= 100.0, t.id
