"""A user's own dataset by import path: ``data.name: "module:function"`` called with ``data.kwargs``, returning the
training and validation datasets of (x, y) pairs; its shape and class count; clear errors for what does not fit."""

from __future__ import annotations

import pytest
import torch

from biocircuits.config.experiment import DataSpec, Experiment
from biocircuits.data import build_data
from biocircuits.data.registry import data_signature
from biocircuits.errors import ConfigError
from tests.models.helpers import write_module

PLUGIN = """
    import torch
    from torch.utils.data import Dataset, TensorDataset

    def build(n=10, classes=None, offset=0.0):
        x = torch.arange(n * 6, dtype=torch.float32).view(n, 2, 3) + offset
        y = torch.arange(n) % 3
        train, val = TensorDataset(x[:-2], y[:-2]), TensorDataset(x[-2:], y[-2:])
        if classes is not None:
            train.classes = list(range(classes))
        return train, val

    class Pairs(Dataset):
        def __len__(self):
            return 4
        def __getitem__(self, i):
            return torch.full((5,), float(i)), 4 * i

    def lazy():
        return Pairs(), Pairs()

    def one_set():
        return build()[0]

    def not_pairs():
        return [1, 2, 3], [1, 2]

    def empty():
        return TensorDataset(torch.zeros(0, 2), torch.zeros(0)), build()[1]

    def fails(n):
        raise FileNotFoundError("no file /data/x.npy")
"""


def spec(name: str, **extra) -> DataSpec:
    return Experiment.from_dict({"name": "x", "data": {"name": name, **extra}}).data


def test_builder_called_with_kwargs(tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, PLUGIN)
    bundle = build_data(spec(f"{name}:build", kwargs={"n": 7, "offset": 0.5}))
    assert len(bundle.train) == 5 and len(bundle.val) == 2
    x, y = bundle.train[4]
    assert torch.equal(x, torch.arange(24, 30, dtype=torch.float32).view(2, 3) + 0.5) and int(y) == 1
    assert bundle.input_shape == (2, 3)
    assert bundle.num_classes == 3  # 1 + the largest training label (labels 0, 1, 2)


@pytest.mark.parametrize(
    ("builder", "extra", "classes"),
    [
        ("build", {"kwargs": {"classes": 7}}, 7),  # the dataset's own ``classes`` list
        ("build", {"num_classes": 12}, 12),  # data.num_classes, when the file sets it
        ("lazy", {}, 13),  # a map-style Dataset: labels 0, 4, 8, 12 read
    ],
)
def test_class_count(tmp_path, monkeypatch, builder, extra, classes):
    name = write_module(tmp_path, monkeypatch, PLUGIN)
    s = spec(f"{name}:{builder}", **extra)
    assert build_data(s).num_classes == classes
    assert data_signature(s)[1] == classes


@pytest.mark.parametrize(
    ("builder", "kwargs", "key", "words"),
    [
        ("one_set", {}, "data.name", "expected (train, val)"),
        ("not_pairs", {}, "data.name", "not an (x, y) pair"),
        ("empty", {}, "data.kwargs", "empty train set"),
        ("fails", {"n": 1}, "data.kwargs", "FileNotFoundError: no file /data/x.npy"),
        ("build", {"size": 3}, "data.kwargs", "unexpected keyword argument 'size'"),
    ],
)
def test_builder_errors(tmp_path, monkeypatch, builder, kwargs, key, words):
    name = write_module(tmp_path, monkeypatch, PLUGIN)
    with pytest.raises(ConfigError) as err:
        build_data(spec(f"{name}:{builder}", kwargs=kwargs))
    assert err.value.key == key and words in str(err.value)


def test_kwargs_only_for_import_paths_and_unknown_module():
    with pytest.raises(ConfigError, match="data.kwargs is passed to a dataset builder") as err:
        spec("digits", kwargs={"n": 3})
    assert err.value.errors[0].key == "data.kwargs"
    with pytest.raises(ConfigError, match="not found") as err:
        spec("no_such_user_module_xyz:build")
    assert err.value.errors[0].key == "data.name"
