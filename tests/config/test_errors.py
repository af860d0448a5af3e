"""Schema errors name the key as the user wrote it, whatever its spelling (``Steps``, ``int``, a glob ``[02]``),
never one of pydantic's union-branch markers in its place; an unknown key's "expected" lists the keys of the
mapping it sits in."""

import pytest

from biocircuits.config.experiment import Experiment
from biocircuits.errors import ConfigError

TRAIN_KEYS = (
    "amp, batch_size, channels_last, checkpoint_every, compile, deterministic, device, epochs, "
    "eval_batch_size, eval_every, grad_accum, grad_clip, label_smoothing, log_every, log_interval_s, log_lines, plots, "
    "probe_batch, "
    "probe_every, progress, seed, steps, tensorboard"
)


def overrides(**by_layer) -> dict:
    return {"constraints": {"feedback": {"rule": "fa", "overrides": by_layer}}}


@pytest.mark.parametrize(
    "data,lines",
    [
        ({"train": {"Steps": 3}}, [f"train.Steps: unknown key; expected one of {TRAIN_KEYS} (did you mean 'steps'?)"]),
        ({"train": {"int": 3}}, [f"train.int: unknown key; expected one of {TRAIN_KEYS}"]),
        (
            {"constraints": {"Dale": {}}},  # not the str branch's "Input should be a valid string" at constraints
            [
                "constraints.Dale: unknown key; expected one of dale, feedback, phases, plasticity, source "
                "(did you mean 'dale'?)"
            ],
        ),
        (
            overrides(**{"4": {"Rule": "fa"}}),
            [
                "constraints.feedback.overrides.4.rule: Field required",
                "constraints.feedback.overrides.4.Rule: unknown key; expected one of options, rule "
                "(did you mean 'rule'?)",
            ],
        ),
        (
            overrides(**{"[02]": {"rule": "sign_symmetry", "options": {"magnitude": "bogus"}}}),
            [
                "constraints.feedback.overrides.[02].options.magnitude: option 'magnitude' of rule 'sign_symmetry': "
                "Input should be 'paper', 'init_std', 'unit', 'weight_rms', 'random_fixed' or 'random_batch', "
                "given 'bogus'"
            ],
        ),
        (
            overrides(Conv1="nope"),
            [
                "constraints.feedback.overrides.Conv1: unknown feedback rule; expected one of bp, dfa, eprop, fa, "
                "kolen_pollack, rflo, sign_symmetry, weight_mirror, given 'nope'"
            ],
        ),
    ],
)
def test_errors_name_the_key_as_written(data, lines):
    with pytest.raises(ConfigError) as err:
        Experiment.from_dict({"name": "x", **data}, file="exp.yaml")
    assert str(err.value).splitlines() == [f"exp.yaml: {line}" for line in lines]
