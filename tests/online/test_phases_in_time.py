"""Phases in time for the online rules (biocircuits/recurrent/phases.py): late, noisy, filtered learning signals and
what they meet (stored, current, trace), alone and together, for rflo and eprop on a 3-unit rate network over 5
steps, against hand recursions (tests/online/hand_time.py)."""

import math

import pytest
import torch

import biocircuits as bc
from biocircuits.core.seeds import layer_seed, step_seed
from biocircuits.errors import ConfigError
from biocircuits.models.recurrent import RateRNN
from biocircuits.recurrent import LIFRNN, online_learner

from ..builders import recurrent_dale
from .hand import lif_hand, near, rate_hand
from .hand_time import arriving, met, rate_interfering, rate_signals, update

B, T, N_IN, N, N_OUT = 2, 5, 2, 3, 2


pytestmark = pytest.mark.usefixtures("float64")  # hand recursions in double precision


def _data():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(B, T, N_IN, generator=gen), torch.tensor([[-1, 0, 1, 1, 0], [-1, 1, 1, 0, 0]])


def _model(rule, phases, dale=None):
    torch.manual_seed(3)
    m = RateRNN(N_IN, N, N_OUT, dt=20.0, tau=50.0, activation="tanh", dale=dale)
    options = {"feedback": "random"} if rule == "eprop" else {}
    spec = {"feedback": {"rule": rule, "options": options}, "phases": phases}
    if dale is not None:
        spec["dale"] = recurrent_dale(dale)
    return bc.apply(m, spec)


def _noise(seed, population, trial=0):
    """The generator of a population's noise in a trial: seeded by (phases.seed, root module, population, trial)."""
    return torch.Generator().manual_seed(step_seed(layer_seed(layer_seed(seed, ""), population), trial))


def _hand(m, x, y, rule, delay=0, state="current", lam=0.0, sigma=0.0, tau=0.0, seed=0, spikes=0):
    """Every parameter's update, the transforms in time written out (module docstring of hand_time)."""
    fb = m.readout.feedback_weight
    with torch.no_grad():
        r, err, sig = rate_signals(m, x, y, fb)
        _, traces = rate_hand(m, x, y, fb, rule)
    per_step = {
        k: [[next(e for bb, tt, e in traces[k] if (bb, tt) == (b, t)) for b in range(B)] for t in range(T)]
        for k in traces
    }
    drawn = sigma or spikes
    err_in = arriving(err, delay, sigma, tau, _noise(seed, "readout") if drawn else None, spikes)
    sig_in = arriving(sig, delay, sigma, tau, _noise(seed, "hidden") if drawn else None, spikes)
    g_in = update(sig_in, met(per_step["input"], delay, state, lam))
    g_rec = update(sig_in, met(per_step["recurrent"], delay, state, lam))
    g_out = update(err_in, met(r, delay, state, lam))
    g_bias = sum(err_in[t][b] for t in range(T) for b in range(B))
    return {
        "input.weight": g_in,
        "recurrent.weight": g_rec[:, :N],
        "recurrent.bias": g_rec[:, N],
        "readout.weight": g_out,
        "readout.bias": g_bias,
    }


CASES = [  # (phases, hand settings): each setting alone, then together
    ({"error_delay": 2}, {"delay": 2, "state": "stored"}),
    ({"error_delay": 2, "backward_state": "current"}, {"delay": 2}),
    ({"error_delay": 1, "backward_state": "trace", "trace_decay": 0.6}, {"delay": 1, "state": "trace", "lam": 0.6}),
    ({"backward_state": "trace", "trace_tau": 2.0}, {"state": "trace", "lam": math.exp(-0.5)}),
    ({"error_noise": 0.5, "seed": 7}, {"sigma": 0.5, "seed": 7}),
    ({"error_filter": 2.0}, {"tau": 2.0}),
    ({"error_delay": 2, "error_noise": 0.3, "seed": 5}, {"delay": 2, "state": "stored", "sigma": 0.3, "seed": 5}),
    (
        {"error_delay": 1, "backward_state": "current", "error_noise": 0.3, "error_filter": 1.5},
        {"delay": 1, "sigma": 0.3, "tau": 1.5},
    ),
]


@pytest.mark.parametrize("rule", ["rflo", "eprop"])
@pytest.mark.parametrize("phases,hand", CASES)
def test_update_equals_hand_recursion_in_time(rule, phases, hand):
    m = _model(rule, phases)
    x, y = _data()
    online_learner(m).accumulate(x, y)
    expected = _hand(m, x, y, rule, **hand)
    for name, param in m.named_parameters():
        assert near(param.grad, expected[name]), (name, param.grad, expected[name])
    plain = _model(rule, {})
    online_learner(plain).accumulate(x, y)
    assert not near(m.recurrent.weight.grad, plain.recurrent.weight.grad, 1e-6)  # the setting changed the update


def test_settings_off_are_bit_identical_and_attach_nothing():
    x, y = _data()
    grads = []
    for phases in ({}, {"error_delay": 0, "error_noise": 0.0, "error_filter": 0.0, "backward_state": "current"}):
        m = _model("eprop", phases)
        assert getattr(m, "attachments", None) is None or not m.attachments.slots.get("transform")
        online_learner(m).accumulate(x, y)
        grads.append([p.grad for p in m.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_delay_with_dale_equals_hand_and_keeps_the_signs():
    m = _model("eprop", {"error_delay": 1, "backward_state": "current"}, dale=0.67)
    x, y = _data()
    opt = bc.bind(torch.optim.SGD(m.parameters(), lr=5.0), m)
    online_learner(m).accumulate(x, y)
    expected = _hand(m, x, y, "eprop", delay=1)
    for name, param in m.named_parameters():
        assert near(param.grad, expected[name]), name
    opt.step()
    assert bc.audit(m).violations == 0


def test_noise_draws_resume_exactly_from_the_trial_counter():
    x, y = _data()
    m = _model("rflo", {"error_noise": 0.5, "seed": 2})
    learner = online_learner(m)
    learner.accumulate(x, y)
    saved = {k: v.clone() for k, v in m.state_dict().items()}
    assert int(saved["phase_trial"]) == 1
    m.zero_grad()
    learner.accumulate(x, y)
    second = m.recurrent.weight.grad.clone()
    fresh = _model("rflo", {"error_noise": 0.5, "seed": 2})
    fresh.load_state_dict(saved)
    online_learner(fresh).accumulate(x, y)
    assert torch.equal(fresh.recurrent.weight.grad, second)
    m.zero_grad()
    first_again = _model("rflo", {"error_noise": 0.5, "seed": 2})
    online_learner(first_again).accumulate(x, y)
    assert not torch.equal(first_again.recurrent.weight.grad, second)  # each trial draws afresh


@pytest.mark.parametrize("phases,words", [({"error_filter": {"tau": 2.0, "cascade": False}}, "cascade")])
def test_settings_without_meaning_in_time_are_refused(phases, words):
    with pytest.raises(ConfigError, match=words):
        _model("eprop", phases)


@pytest.mark.parametrize("rule", ["rflo", "eprop"])
@pytest.mark.parametrize(
    "phases,hand",
    [
        ({"interference": 0.5}, {"gamma": 0.5}),
        ({"interference": {"gamma": -2.0, "scale": "error"}}, {"gamma": -2.0, "scale": "error"}),
        ({"interference": 0.5, "error_delay": 1, "backward_state": "current"}, {"gamma": 0.5, "delay": 1}),
    ],
)
def test_interference_adds_the_arrived_signals_to_the_next_steps_activity(rule, phases, hand):
    m = _model(rule, phases)
    x, y = _data()
    loss, _ = online_learner(m).accumulate(x, y)
    with torch.no_grad():
        expected = rate_interfering(m, x, y, m.readout.feedback_weight, rule, **hand)
    for name, param in m.named_parameters():
        assert near(param.grad, expected[name]), (name, param.grad, expected[name])
    plain = _model(rule, {})
    plain_loss, _ = online_learner(plain).accumulate(x, y)
    assert not near(loss, plain_loss, 1e-8)  # the activity (and so the loss) changed


def test_interference_is_refused_for_spiking_units():
    with pytest.raises(ConfigError, match="spiking"):
        bc.apply(LIFRNN(N_IN, N, N_OUT), {"feedback": {"rule": "eprop"}, "phases": {"interference": 0.1}})


@pytest.mark.parametrize("rule", ["rflo", "eprop"])
def test_quantised_noisy_late_signal_equals_hand_recursion(rule):
    phases = {"error_delay": 1, "backward_state": "current", "error_noise": 0.2, "error_quantization": 3, "seed": 1}
    m = _model(rule, phases)
    x, y = _data()
    online_learner(m).accumulate(x, y)
    expected = _hand(m, x, y, rule, delay=1, sigma=0.2, spikes=3, seed=1)
    for name, param in m.named_parameters():  # quantize codes in float32
        assert near(param.grad, expected[name], 1e-6), (name, param.grad, expected[name])


@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_eprop_on_spiking_units_with_a_late_filtered_signal_equals_hand_recursion(beta):
    torch.manual_seed(4)
    m = LIFRNN(N_IN, N, N_OUT, tau_mem=5.0, tau_adapt=8.0, beta=beta, v_th=0.6, tau_out=3.0)
    with torch.no_grad():
        m.recurrent.weight.copy_(torch.tensor([[0.0, 0.8, -0.5], [0.7, 0.0, 0.4], [-0.6, 0.9, 0.0]]))
        m.input.weight.copy_(torch.tensor([[0.9, -0.3], [0.5, 0.6], [-0.4, 0.8]]))
    phases = {"error_delay": 1, "backward_state": "current", "error_filter": 1.5}
    bc.apply(m, {"feedback": {"rule": "eprop", "options": {"feedback": "random"}}, "phases": phases})
    x, y = _data()
    online_learner(m).accumulate(3.0 * x, y)
    with torch.no_grad():
        expected, _, spikes = lif_hand(m, 3.0 * x, y, m.readout.feedback_weight, late=1, tau=1.5)
        on_time, _, _ = lif_hand(m, 3.0 * x, y, m.readout.feedback_weight)
    assert spikes > 0 and not near(expected["input.weight"], on_time["input.weight"], 1e-8)
    for name, param in m.named_parameters():
        assert near(param.grad, expected[name]), (name, param.grad, expected[name])
