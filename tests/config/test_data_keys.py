"""A data key that only some datasets read is refused for the others (it would be accepted and do nothing)."""

import pytest

from biocircuits.config.experiment import Experiment
from biocircuits.errors import ConfigError


@pytest.mark.parametrize(
    "data",
    [
        {"name": "digits", "shuffle_buffer": 10},
        {"name": "mnist5k", "val_labels": "LOC_val_solution.csv"},
        {"name": "synthetic", "decode": "gpu"},
        {"name": "digits", "task": "perceptual_decision"},
        {"name": "imagefolder", "root": ".", "task_options": {"dt": 10}},
    ],
)
def test_a_key_the_dataset_does_not_read_is_refused(data):
    key = next(k for k in data if k not in ("name", "root"))
    with pytest.raises(ConfigError) as err:
        Experiment.from_dict({"name": "x", "data": data}, file="exp.yaml")
    text = str(err.value)
    assert f"data.{key}" in text and "read only by" in text and repr(data["name"]) in text


def test_defaults_and_readers_are_accepted():
    Experiment.from_dict({"name": "x", "data": {"name": "digits", "shuffle_buffer": 1000, "decode": "cpu"}})
    Experiment.from_dict({"name": "x", "data": {"name": "cognitive", "task": "perceptual_decision"}})
    Experiment.from_dict({"name": "x", "data": {"name": "imagefolder", "root": ".", "decode": "gpu"}})
