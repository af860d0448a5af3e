"""Models by name: a user's builder by import path ("module:function"), timm models ("timm/<name>"), and every
builder error a clear ConfigError naming its key (model.name, model.kwargs.<key>)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biocircuits.config.experiment import Experiment
from biocircuits.errors import ConfigError
from biocircuits.models import build_model

from .helpers import write_module

PLUGIN = """
    import torch
    from torch import nn

    CALLS = []

    def build(num_classes, width=4):
        CALLS.append({"num_classes": num_classes, "width": width})
        torch.manual_seed(7)
        return nn.Sequential(nn.Flatten(), nn.Linear(6, width), nn.ReLU(), nn.Linear(width, num_classes))

    def build_shaped(input_shape, num_classes):
        CALLS.append({"input_shape": input_shape, "num_classes": num_classes})
        return nn.Linear(input_shape[0], num_classes)

    def not_a_model(num_classes):
        return "a string"

    def broken(num_classes, width=4):
        return nn.Linear(width, num_classes) if width > 0 else nn.Linear(torch.empty(width).numel(), 1)

    NOT_CALLABLE = 3
"""


def test_plugin_builder_gets_num_classes_and_kwargs(tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, PLUGIN)
    model = build_model(f"{name}:build", (6,), 3, {"width": 5})
    module = __import__(name)
    assert module.CALLS == [{"num_classes": 3, "width": 5}]
    torch.manual_seed(7)  # the builder's own draws: the same network built by hand
    w1, w2 = nn.Linear(6, 5), nn.Linear(5, 3)
    x = torch.randn(2, 6)
    assert torch.equal(model(x), w2(torch.relu(w1(x))))


def test_plugin_builder_taking_input_shape(tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, PLUGIN)
    model = build_model(f"{name}:build_shaped", (6,), 2, {})
    assert __import__(name).CALLS == [{"input_shape": (6,), "num_classes": 2}]
    assert model.weight.shape == (2, 6)


@pytest.mark.parametrize(
    ("target", "kwargs", "key", "words"),
    [
        ("nowhere_module_xyz:build", {}, "model.name", "not found"),
        ("{m}:bulid", {}, "model.name", "did you mean 'build'"),
        ("{m}:NOT_CALLABLE", {}, "model.name", "is not callable"),
        ("{m}:not_a_model", {}, "model.name", "did not return an nn.Module"),
        ("{m}:build", {"depth": 3}, "model.kwargs", "unexpected keyword argument 'depth'"),
        ("{m}:broken", {"width": -2}, "model.kwargs.width", "RuntimeError"),
    ],
)
def test_plugin_errors_name_the_key(tmp_path, monkeypatch, target, kwargs, key, words):
    name = write_module(tmp_path, monkeypatch, PLUGIN)
    with pytest.raises(ConfigError) as err:
        build_model(target.format(m=name), (6,), 3, kwargs)
    assert err.value.key == key and words in str(err.value)


def test_module_that_fails_to_import(tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "x = 1 / 0\n")
    with pytest.raises(ConfigError, match="does not import: ZeroDivisionError") as err:
        build_model(f"{name}:build", (6,), 3, {})
    assert err.value.key == "model.name"
    dep = write_module(tmp_path, monkeypatch, "import not_installed_dependency_xyz\n")
    with pytest.raises(ConfigError, match="install 'not_installed_dependency_xyz'"):
        build_model(f"{dep}:build", (6,), 3, {})


def test_experiment_checks_the_import_path_and_finds_modules_beside_the_file(tmp_path, monkeypatch):
    """Validation imports the module: a missing attribute is an error at model.name (not model.name.model.name);
    a module beside the experiment file is found without sys.path."""
    name = write_module(tmp_path, monkeypatch, PLUGIN, on_path=False)
    file = str(tmp_path / "exp.yaml")
    exp = Experiment.from_dict({"name": "x", "model": {"name": f"{name}:build"}}, file=file)
    assert exp.model.name == f"{name}:build"
    with pytest.raises(ConfigError) as err:
        Experiment.from_dict({"name": "x", "model": {"name": f"{name}:missing"}}, file=file)
    assert err.value.errors[0].key == "model.name" and "has no attribute 'missing'" in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"channels": [-16, 32]}, "model.kwargs.channels[0]"),
        ({"channels": [16, 32], "hidden": 10**9}, "model.kwargs.hidden"),
    ],
)
def test_registered_model_sizes_are_checked(kwargs, key):
    with pytest.raises(ConfigError) as err:
        build_model("convnet", (1, 8, 8), 10, kwargs)
    assert err.value.key == key


def test_unknown_registered_name_suggests_import_paths():
    with pytest.raises(ConfigError, match="package.module:function") as err:
        build_model("convnte", (1, 8, 8), 10, {})
    assert err.value.key == "model.name" and "did you mean 'convnet'" in str(err.value)


def test_timm_model_by_name():
    timm = pytest.importorskip("timm")
    model = build_model("timm/test_resnet", (1, 32, 32), 5, {})
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False, num_classes=5, in_chans=1)
    assert [k for k in model.state_dict()] == [k for k in reference.state_dict()]
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    with pytest.raises(ConfigError, match="did you mean") as err:
        build_model("timm/test_resnett", (3, 32, 32), 5, {})
    assert err.value.key == "model.name"
