"""Checkpoints written before the layer-attachment interface still load and resume to the same weights.

``tests/fixtures/v0_run`` was written by the code of commit b2e9190 (``tests/fixtures/make_v0_run.py``): an MLP with
sign symmetry (random_batch) and FA, Dale (project), error noise, quantisation and the stored delay (not
``eligibility_decay``, which has left the schema; its saved off value 0.0 is accepted), and a plasticity rule,
stopped at step 8; ``v0_run_step16_model.pt`` is the model that code reached when resuming it to step 16."""

import shutil
from pathlib import Path

import torch
import yaml

from biocircuits.config.experiment import Experiment
from biocircuits.train.checkpoint import load_checkpoint
from biocircuits.train.trainer import run_experiment

DATA = Path(__file__).parent / "fixtures"


def test_old_run_resumes_to_the_weights_the_old_code_reached(tmp_path):
    run = tmp_path / "v0_run"
    shutil.copytree(DATA / "v0_run", run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["train"]["steps"] = 16
    summary = run_experiment(Experiment.from_dict(config), run, resume=True)
    assert summary["steps"] == 16
    got = load_checkpoint(run / "checkpoint.pt")["model"]
    want = torch.load(DATA / "v0_run_step16_model.pt", weights_only=True)
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key
