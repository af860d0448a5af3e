"""``data_signature``: the input shape and class count that ``validate`` and ``layers`` use without reading the data
equal those of the data a run builds."""

from __future__ import annotations

import pytest

from biocircuits.config.experiment import DataSpec
from biocircuits.data import build_data
from biocircuits.data.registry import data_signature


@pytest.mark.parametrize(
    "settings",
    [
        {"name": "digits"},
        {"name": "digits", "channels": 3, "resize": 16},
        {"name": "synthetic", "shape": [5, 7], "num_classes": 4, "train_size": 8, "val_size": 4},
    ],
)
def test_signature_equals_the_built_data(settings):
    spec = DataSpec(**settings)
    bundle = build_data(spec)
    assert data_signature(spec) == (tuple(bundle.input_shape), bundle.num_classes)
