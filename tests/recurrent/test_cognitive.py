"""The offline cognitive tasks (biocircuits/data/cognitive.py) and row-by-row digits (biocircuits/data/sequential.py):
trial structure, masks, labels from the stimuli, seeds."""

import pytest
import torch

from biocircuits.config.experiment import DataSpec, Experiment
from biocircuits.data import build_data
from biocircuits.data.cognitive import TASKS
from biocircuits.errors import ConfigError


def spec(**kw) -> DataSpec:
    return DataSpec(**{"name": "cognitive", "train_size": 40, "val_size": 12, **kw})


@pytest.mark.parametrize("task", ["perceptual_decision", "delayed_match", "context_integration"])
def test_trial_structure_and_mask(task):
    bundle = build_data(spec(task=task))
    x, y = bundle.train.tensors
    steps = TASKS.get(task)().steps()
    resp = steps["response"]
    assert x.shape == (40, *bundle.input_shape) and y.shape == (40, bundle.input_shape[0])
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and bundle.num_classes == 2
    assert bundle.input_shape[0] == resp.stop  # the response period ends the trial
    assert bool((y[:, : resp.start] == -1).all())
    assert bool((y[:, resp] >= 0).all()) and bool((y[:, resp] == y[:, resp.start : resp.start + 1]).all())
    assert bool((x[:, : resp.start, 0] == 1).all()) and bool((x[:, resp, 0] == 0).all())
    assert bool((x[:, : steps["fixation"].stop, 1:][..., -2:] == 0).all())  # no stimulus during fixation
    assert 0 < float(y[:, -1].float().mean()) < 1  # both classes occur


def test_seed_reproduces_and_changes_the_trials():
    a, b = build_data(spec(task="perceptual_decision")), build_data(spec(task="perceptual_decision"))
    c = build_data(spec(task="perceptual_decision", split_seed=1))
    for ta, tb in zip(a.train.tensors + a.val.tensors, b.train.tensors + b.val.tensors, strict=True):
        assert torch.equal(ta, tb)
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    assert not torch.equal(a.train.tensors[0][:12], a.val.tensors[0])  # val is not a prefix of train


def test_perceptual_decision_label_is_the_stronger_channel():
    x, y = build_data(spec(task="perceptual_decision", task_options={"input_noise": 0.0})).train.tensors
    stim = TASKS.get("perceptual_decision")().steps()["stimulus"]
    c = x[:, stim.start, 1] - x[:, stim.start, 2]  # (1 + c) / 2 - (1 - c) / 2 = c
    assert torch.equal(y[:, -1], (c < 0).long())
    assert {round(v, 4) for v in c.abs().tolist()} <= {0.1, 0.2, 0.4, 0.8}


def test_delayed_match_label_is_sample_equals_test():
    task = TASKS.get("delayed_match")(input_noise=0.0, delay=400.0)
    x, y = task.generate(64, torch.Generator().manual_seed(3))
    s = task.steps()
    assert s["delay"].stop - s["delay"].start == 20
    sample, test = x[:, s["sample"].start, 1:].argmax(1), x[:, s["test"].start, 1:].argmax(1)
    assert torch.equal(y[:, -1], (sample == test).long())
    assert bool((x[:, s["delay"], 1:] == 0).all())


def test_context_integration_label_follows_the_cued_modality():
    task = TASKS.get("context_integration")(input_noise=0.0)
    x, y = task.generate(64, torch.Generator().manual_seed(4))
    t = task.steps()["stimulus"].start
    motion, colour = x[:, t, 3] - x[:, t, 4], x[:, t, 5] - x[:, t, 6]
    attended = torch.where(x[:, t, 1] == 1, motion, colour)
    assert bool((x[:, t, 1] + x[:, t, 2] == 1).all())
    assert torch.equal(y[:, -1], (attended < 0).long())
    assert bool(((motion < 0) != (colour < 0)).any())  # the contexts disagree on some trials


def test_bad_task_and_options_are_config_errors():
    with pytest.raises(ConfigError, match="task"):
        build_data(spec())
    with pytest.raises(ConfigError, match="perceptual_decision"):
        Experiment.from_dict({"name": "x", "data": {"name": "cognitive", "task": "perceptual_decisoin"}})
    with pytest.raises(ConfigError, match="task_options"):
        build_data(spec(task="delayed_match", task_options={"stimulus": 100.0}))


def test_seq_digits_rows_in_order_label_at_the_last_step():
    seq = build_data(DataSpec(name="seq_digits"))
    img = build_data(DataSpec(name="digits"))
    x, y = seq.train.tensors
    assert seq.input_shape == (8, 8) and x.shape[1:] == (8, 8)
    assert torch.equal(x, img.train.tensors[0][:, 0])
    assert bool((y[:, :-1] == -1).all()) and torch.equal(y[:, -1], img.train.tensors[1])
