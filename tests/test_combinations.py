"""Every combination of settings keeps the library's invariants (issue #24, "Combinations").

Hypothesis draws a feedback rule (bp, fa with each init, sign symmetry with several magnitudes, Kolen-Pollack,
weight mirror, DFA with channel or full conv feedback) x a Dale architecture (off, column-sign with each enforcer,
norm gamma, population norm, assignment and typing; DANN with its options) x phases (off, noise, quantisation, a
late error meeting the stored / current / traced state, the cascading or per-layer filter, interference scaled to
the activity or the error) x plasticity (off, one or two rows, batch Manhattan) x an optimiser (SGD, SGD with
momentum and weight decay, Nesterov, Adam, AdamW; all parameters, some left out, or two parameter groups) on a
tiny MLP or conv net, with or without a normalisation (:mod:`tests.combinations`). Each combination is either
refused by a :class:`~biocircuits.errors.ConfigError` that names a key and says why, or trains a few steps with:

- 0 Dale violations after every step, 0 effective violations where no normalisation may flip a unit, and every
  DANN tensor (W_EE, W_IE, W_EI) non-negative;
- evaluation (eval-mode forward under no_grad, a training-mode forward under no_grad), ``bc.probe`` and
  ``bc.audit(model, sample)`` between steps changing nothing (the state dict after the steps, buffers included,
  bit-identical to a run without them);
- a no-op ``y * 1`` module after the last layer changing nothing (late errors reach every transform on every
  layer whatever follows it);
- resume: model and optimiser state and the RNG state saved after 1, 2 or 3 steps and loaded into a freshly built,
  converted model giving the straight run's state bit for bit.

And with everything off (bp, no Dale, no phases, no plasticity, in every spelling of "off") the weights equal
plain torch's bit for bit."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import biocircuits as bc
from biocircuits.errors import ConfigError, ConfigErrors

from .combinations import COMBOS, OPTIMISERS, STEPS, build, build_model, differences, resumed, run, snapshot, train_step

# a DANN layer's excitatory projection W_EE (the latent "original") and its interneuron weights W_IE, W_EI
DANN_TENSOR = re.compile(r"parametrizations\.weight\.(original|0\.weight_ie|0\.weight_ei)$")

# documented: Kolen-Pollack without weight decay warns that W and B will not converge (drawn on purpose here)
pytestmark = pytest.mark.filterwarnings("ignore:.*kolen_pollack with weight decay 0:UserWarning")

SETTINGS = {"deadline": None, "derandomize": True, "suppress_health_check": [HealthCheck.too_slow]}

# every spelling of "all off": bc.apply must leave training exactly plain torch
ALL_OFF = [
    None,
    {},
    {"feedback": {"rule": "bp"}, "dale": None, "phases": {}, "plasticity": {}},
    {"dale": {"enabled": False}},
    {"phases": {"error_noise": 0.0, "error_quantization": 0, "error_delay": 0, "error_filter": 0, "interference": 0}},
    {"plasticity": {"rules": [{"match": {"layers": "*"}, "lr_scale": 1.0, "direction": "both"}]}},
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models are tiny: one intra-op thread (two threads on a loaded machine are ~20x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def refused(combo: dict[str, Any]) -> ConfigError | None:
    """The ConfigError that converting, binding or the first step raises for the combination, else None."""
    try:
        model, opt = build(combo)
        train_step(model, opt, combo["model"], 100, combo.get("micro", 1))
    except ConfigError as err:
        return err
    return None


def assert_says_why(err: ConfigError, combo: dict[str, Any]) -> None:
    """Every error (each line of a :class:`ConfigErrors`) has a message and names the key it refuses."""
    for one in err.errors if isinstance(err, ConfigErrors) else [err]:
        assert one.message.strip(), f"{combo}: refused without a message"
        assert one.key, f"{combo}: refused without naming a key: {one}"


def assert_obeys_dale(combo: dict[str, Any]):
    """0 violations; 0 effective violations too where no normalisation can flip a unit (none in the model, or
    ``norm_gamma: nonnegative``)."""
    if combo["dale"] is None:
        return None
    effective = combo["dale"].get("norm_gamma") == "nonnegative" or combo["model"] in ("mlp", "conv")
    dann = combo["dale"].get("architecture") == "dann"

    def check(model: torch.nn.Module, report: bc.AuditReport) -> None:
        assert report.violations == 0, f"{combo}:\n{report}"
        assert report.effective_violations == 0 or not effective, f"{combo}:\n{report}"
        negative = {
            name: int((p < 0).sum()) for name, p in model.named_parameters() if dann and DANN_TENSOR.search(name)
        }
        assert not any(negative.values()), f"{combo}: negative DANN weights (W_EE, W_IE, W_EI all >= 0): {negative}"

    return check


def check_combination(combo: dict[str, Any]) -> None:
    err = refused(combo)
    if err is not None:
        assert_says_why(err, combo)
        return
    straight = run(combo, check=assert_obeys_dale(combo))
    assert not (diff := differences(straight, run(combo, probe=True, check=assert_obeys_dale(combo)))), (
        f"evaluation / probe / audit between steps changed the run of {combo}: {diff}"
    )
    assert not (diff := differences(straight, run(combo, tail=True))), (
        f"a no-op module after the last layer changed the run of {combo}: {diff}"
    )
    assert not (diff := differences(straight, resumed(combo))), f"resume is not exact for {combo}: {diff}"


@settings(max_examples=300, **SETTINGS)
@given(combo=COMBOS)
def test_every_combination_is_refused_or_keeps_the_invariants(combo):
    check_combination(combo)


@pytest.mark.slow
@settings(max_examples=500, **SETTINGS)  # the slow marker promises under a minute
@given(combo=COMBOS)
def test_every_combination_many_draws(combo):
    check_combination(combo)


@settings(max_examples=48, **SETTINGS)
@given(off=st.sampled_from(ALL_OFF), optim=st.sampled_from(sorted(OPTIMISERS)), kind=st.sampled_from(["mlp", "conv"]))
def test_all_off_is_plain_torch_bit_for_bit(off, optim, kind):
    model = bc.apply(build_model(kind), off)
    opt = bc.bind(OPTIMISERS[optim](model.parameters()), model)
    plain = build_model(kind)
    plain_opt = OPTIMISERS[optim](plain.parameters())
    for i in range(STEPS):
        train_step(model, opt, kind, 100 + i)
        train_step(plain, plain_opt, kind, 100 + i)
    assert not (diff := differences(snapshot(plain), snapshot(bc.remove(model)))), f"{off}, {optim}: {diff}"


def test_differences_sees_one_ulp_and_missing_keys():
    """The comparison the invariants rest on: one ulp apart is a difference; NaN at the same place is not."""
    a = {"w": torch.tensor([1.0, float("nan")]), "b": torch.zeros(2)}
    b = {"w": torch.tensor([torch.nextafter(torch.tensor(1.0), torch.tensor(2.0)).item(), float("nan")])}
    assert differences(a, dict(a)) == []
    assert differences(a, b) == ["b: only in one", "w: max |diff| 1.19e-07"]
