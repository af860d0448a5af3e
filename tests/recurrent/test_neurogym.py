"""``data.name: neurogym`` (biocircuits/data/neurogym_tasks.py), when neurogym is installed: the trials are the
environment's own, masked outside the decision period, reproducible from the seed, and train a rate RNN."""

import pytest
import torch

from biocircuits.config.experiment import DataSpec, Experiment
from biocircuits.data import build_data
from biocircuits.train.trainer import run_experiment

neurogym = pytest.importorskip("neurogym")

TASK = "PerceptualDecisionMaking-v0"


def test_trials_are_the_environments_with_the_decision_period_as_target():
    spec = DataSpec(name="neurogym", task=TASK, task_options={"dt": 100}, train_size=6, val_size=3)
    bundle = build_data(spec)
    x, y = bundle.train.tensors
    env = neurogym.make(TASK, dt=100).unwrapped
    env.seed(0)  # any seed: the structure, not the draw
    env.new_trial()
    start, end = env.start_ind["decision"], env.end_ind["decision"]
    assert bundle.input_shape == (x.shape[1], env.ob.shape[1]) and bundle.num_classes == env.action_space.n
    assert bool((y[:, :start] == -1).all()) and bool((y[:, start:end] >= 1).all())
    again = build_data(spec)
    assert torch.equal(again.train.tensors[0], x) and torch.equal(again.val.tensors[1], bundle.val.tensors[1])
    assert not torch.equal(build_data(spec.model_copy(update={"split_seed": 1})).train.tensors[0], x)


def test_a_rate_rnn_trains_on_a_neurogym_task(tmp_path):
    exp = Experiment.from_dict(
        {
            "name": "ngym",
            "data": {"name": "neurogym", "task": TASK, "task_options": {"dt": 100}, "train_size": 32, "val_size": 8},
            "model": {"name": "rate_rnn", "kwargs": {"n_hidden": 8}},
            "constraints": {"feedback": {"rule": "fa"}},
            "optim": {"name": "adam", "lr": 0.01},
            "train": {"steps": 2, "batch_size": 8, "plots": False, "probe_every": None},
        }
    )
    assert run_experiment(exp, tmp_path / "run")["steps"] == 2
