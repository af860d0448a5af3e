"""Saved configs record the weight mirror's schedule options even when the spec leaves them to their defaults, so a
resume under other defaults is refused instead of silently changing the run."""

import pytest
import yaml

from biocircuits.config.experiment import Experiment
from biocircuits.errors import RunFolderError
from biocircuits.feedback.rules.weight_mirror import WeightMirrorOptions
from biocircuits.train.resume_check import check_resume

EXP = """name: tiny
data: {name: digits}
model: {name: mlp, kwargs: {hidden: [8]}}
train: {steps: 2, batch_size: 16, probe_every: null, plots: false}
constraints:
  feedback:
    rule: RULE
    options: OPTIONS
    overrides: {"net.0": weight_mirror, "net.2": {rule: weight_mirror, options: {samples: 5}}}
"""
SCHEDULE = ("samples", "mirror_every", "warmup_steps")


def resolved(rule: str, options: str) -> dict:
    return Experiment.from_dict(yaml.safe_load(EXP.replace("RULE", rule).replace("OPTIONS", options))).resolved_dict()


def test_the_saved_config_holds_the_schedule_defaults_and_keeps_what_the_spec_sets():
    defaults = WeightMirrorOptions()
    feedback = resolved("weight_mirror", "{mirror_every: 3}")["constraints"]["feedback"]
    assert feedback["options"] == {
        "mirror_every": 3,
        "samples": defaults.samples,
        "warmup_steps": defaults.warmup_steps,
    }
    assert feedback["overrides"]["net.0"] == {
        "rule": "weight_mirror",
        "options": {name: getattr(defaults, name) for name in SCHEDULE},
    }
    assert feedback["overrides"]["net.2"]["options"]["samples"] == 5
    assert feedback["overrides"]["net.2"]["options"]["mirror_every"] == defaults.mirror_every
    assert resolved("fa", "{}")["constraints"]["feedback"]["options"] == {}  # rules without recorded options


def test_a_run_saved_under_other_schedule_defaults_is_refused_on_resume():
    new = resolved("weight_mirror", "{}")
    assert check_resume(new, new, "config.yaml") == {}
    saved = yaml.safe_load(yaml.safe_dump(new))
    saved["constraints"]["feedback"]["options"] = {"samples": 32, "mirror_every": 1, "warmup_steps": 0}
    every = WeightMirrorOptions().mirror_every
    with pytest.raises(RunFolderError, match=rf"constraints.feedback.options.mirror_every: 1 -> {every}"):
        check_resume(saved, new, "config.yaml")
    # the saved values, set explicitly, resume it
    again = resolved("weight_mirror", "{samples: 32, mirror_every: 1, warmup_steps: 0}")
    assert check_resume(saved, again, "config.yaml") == {}


def test_a_run_saved_before_the_options_were_recorded_resumes_only_with_the_schedule_it_ran():
    """A config saved before #27 holds ``options: {}`` and ran 32 draws after every step (no warm-up): resuming it
    under today's defaults is refused; with those values set explicitly it resumes."""
    new = resolved("weight_mirror", "{}")
    saved = yaml.safe_load(yaml.safe_dump(new))
    saved["constraints"]["feedback"]["options"] = {}
    saved["constraints"]["feedback"]["overrides"] = {"net.2": {"rule": "weight_mirror", "options": {"samples": 5}}}
    new["constraints"]["feedback"]["overrides"].pop("net.0")
    every = WeightMirrorOptions().mirror_every
    with pytest.raises(RunFolderError, match=rf"constraints.feedback.options.mirror_every: 1 -> {every}"):
        check_resume(saved, new, "config.yaml")
    again = resolved("weight_mirror", "{samples: 32, mirror_every: 1, warmup_steps: 0}")
    again["constraints"]["feedback"]["overrides"] = {
        "net.2": {"rule": "weight_mirror", "options": {"samples": 5, "mirror_every": 1, "warmup_steps": 0}}
    }
    assert check_resume(saved, again, "config.yaml") == {}
