"""``bc.load_data`` (biocircuits/config/data.py): the public way to a registered dataset, the same split a run's
``data:`` section gives, and bad settings as ConfigErrors."""

import pytest
import torch

import biocircuits as bc
from biocircuits.config.experiment import DataSpec
from biocircuits.data import build_data


def test_load_data_is_the_runs_split():
    data = bc.load_data("digits", val_fraction=0.25, split_seed=3)
    ref = build_data(DataSpec(name="digits", val_fraction=0.25, split_seed=3))
    x, y = data.train.tensors
    assert (data.num_classes, data.input_shape) == (ref.num_classes, ref.input_shape) == (10, (1, 8, 8))
    assert (
        len(data.val) == len(ref.val) and torch.equal(x, ref.train.tensors[0]) and torch.equal(y, ref.train.tensors[1])
    )
    assert len(data.val) == round(0.25 * (len(data.train) + len(data.val)))


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("digitz", {}, r"name: unknown dataset.*did you mean 'digits'"),
        ("digits", {"val_fractoin": 0.1}, r"val_fractoin: unknown key.*did you mean 'val_fraction'"),
        ("digits", {"val_fraction": 1.5}, r"val_fraction"),
    ],
)
def test_bad_settings_are_config_errors(name, settings, message):
    with pytest.raises(bc.ConfigError, match=message):
        bc.load_data(name, **settings)
