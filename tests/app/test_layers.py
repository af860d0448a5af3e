"""``biocircuits layers`` (the model's weight layers: name, type, shape, rule, Dale types, exempt) and ``validate``
building the model, so that dead layer globs, bad model.kwargs and unfit checkpoints exit 2 before a run."""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

import biocircuits as bc
from biocircuits.app.cli import main
from biocircuits.models import build_model

from ..models.helpers import write_module

SPEC = {"feedback": {"rule": "sign_symmetry"}, "dale": {"excitatory_fraction": 0.75}}


def write_experiment(tmp_path, constraints=None, **model) -> str:
    exp = {
        "name": "lay",
        "data": {"name": "digits"},
        "constraints": constraints or SPEC,
        "model": {"name": "mlp", "kwargs": {"hidden": [16]}, **model},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return str(path)


def test_layers_table_and_json(tmp_path, capsys):
    path = write_experiment(tmp_path)
    assert main(["layers", path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # by hand: Linear(64, 16) fed by the input (exempt: <input>), Linear(16, 10) with round(0.75 * 16) = 12 E units
    reference = bc.apply(build_model("mlp", (1, 8, 8), 10, {"hidden": [16]}), SPEC)
    assert rows == [
        {
            "layer": "1",
            "type": "FeedbackLinear",
            "weight": [16, 64],
            "rule": repr(reference[1].rule),
            "dale": "-",
            "exempt": True,
        },
        {
            "layer": "3",
            "type": "FeedbackLinear",
            "weight": [10, 16],
            "rule": repr(reference[3].rule),
            "dale": "12E/4I",
            "exempt": False,
        },
    ]
    assert int((reference[3].dale_sign > 0).sum()) == 12
    assert main(["layers", path, "--set", "constraints.feedback.exclude=['3']"]) == 0
    lines = [re.split(r"\s{2,}", line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == ["layer", "type", "weight", "rule", "dale", "exempt"]
    assert lines[2] == ["1", "FeedbackLinear", "16x64", repr(reference[1].rule), "-", "yes"]
    assert lines[3] == ["3", "Linear", "10x16", "(plain torch)", "12E/4I", "no"]


def test_layers_of_a_plugin_model(tmp_path, monkeypatch, capsys):
    name = write_module(
        tmp_path,
        monkeypatch,
        """
        from torch import nn
        def build(num_classes, input_shape):
            return nn.Sequential(nn.Conv2d(input_shape[0], 3, 3), nn.Flatten(), nn.Linear(108, num_classes))
    """,
    )
    assert (
        main(
            [
                "layers",
                write_experiment(tmp_path, {"feedback": {"rule": "fa"}}, name=f"{name}:build", kwargs={}),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["layer"], r["type"], r["weight"]) for r in rows] == [
        ("0", "FeedbackConv2d", [3, 1, 3, 3]),
        ("2", "FeedbackLinear", [10, 108]),
    ]


@pytest.mark.parametrize(
    ("constraints", "key", "glob"),
    [
        ({"feedback": {"rule": "fa", "overrides": {"layer9.*": "bp"}}}, "feedback.overrides", "layer9.*"),
        ({"feedback": {"rule": "fa", "exclude": ["head"]}}, "feedback.exclude", "head"),
        ({"dale": {"exempt": ["<input>", "fc*"]}}, "dale.exempt", "fc*"),
        (
            {"dale": {}, "plasticity": {"rules": [{"match": {"layers": "features.*", "population": "I"}}]}},
            "plasticity.rules[0].match.layers",
            "features.*",
        ),
    ],
)
def test_validate_names_a_glob_that_matches_nothing(tmp_path, capsys, constraints, key, glob):
    assert main(["validate", write_experiment(tmp_path, constraints)]) == 2
    err = capsys.readouterr().err
    assert f"{key}: pattern matches no" in err and repr(glob) in err


def test_validate_builds_the_model(tmp_path, monkeypatch, capsys):
    assert main(["validate", write_experiment(tmp_path)]) == 0
    assert "valid experiment, model built" in capsys.readouterr().out
    # DANN reads the weights to split them: not on the meta device, so validate builds on the CPU
    assert main(["validate", write_experiment(tmp_path, "dale_dann.yaml")]) == 0
    # a model that does not take the data's inputs (digits are 1x8x8; this one wants 5 features)
    name = write_module(
        tmp_path,
        monkeypatch,
        """
        from torch import nn
        def build(num_classes):
            return nn.Linear(5, num_classes)
    """,
    )
    assert main(["validate", write_experiment(tmp_path, "bp.yaml", name=f"{name}:build", kwargs={})]) == 2
    assert "model: the model does not take the data's inputs" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "run", "layers"])
def test_negative_size_in_model_kwargs_exits_2_naming_the_key(tmp_path, capsys, command):
    path = write_experiment(tmp_path, "bp.yaml", name="convnet", kwargs={"channels": [-16, 32]})
    assert main([command, path, *(["--output", str(tmp_path / "run")] if command == "run" else [])]) == 2
    err = capsys.readouterr().err
    assert "model.kwargs.channels[0]: a size cannot be negative" in err and "-16" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_builder_error_is_a_config_error(tmp_path, monkeypatch, capsys):
    name = write_module(
        tmp_path,
        monkeypatch,
        """
        import torch
        def build(num_classes, width):
            return torch.nn.Linear(torch.empty(width).numel(), num_classes)
    """,
    )
    assert main(["validate", write_experiment(tmp_path, "bp.yaml", name=f"{name}:build", kwargs={"width": -3})]) == 2
    err = capsys.readouterr().err
    assert "model.kwargs.width" in err and "could not be built: RuntimeError" in err
    torch.save({"weight": torch.zeros(10, 2)}, tmp_path / "w.pt")
    assert (
        main(
            [
                "validate",
                write_experiment(tmp_path, "bp.yaml", name=f"{name}:build", kwargs={"width": 3}, checkpoint="w.pt"),
            ]
        )
        == 2
    )
    assert "wrong shape: weight (10, 2) for (10, 3)" in capsys.readouterr().err
