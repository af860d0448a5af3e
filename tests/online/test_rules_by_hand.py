"""e-prop and RFLO (biocircuits/recurrent/) against hand recursions: a 3-unit rate network and a 3-unit LIF/ALIF
network over 4 steps, every synapse's eligibility trace and the trial's weight update."""

import pytest
import torch

import biocircuits as bc
from biocircuits.models.recurrent import RateRNN
from biocircuits.recurrent import LIFRNN, online_learner
from biocircuits.recurrent.traces import AdaptiveTrace, Dynamics, PresynapticTrace, RFLOTrace

from .hand import lif_hand, near, rate_hand, sequence_loss

B, T, N_IN, N, N_OUT = 2, 4, 2, 3, 2


pytestmark = pytest.mark.usefixtures("float64")  # hand recursions in double precision


def _data(seed=1, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(B, T, N_IN, generator=gen)
    y = torch.tensor([[-1, 0, 1, 1], [-1, -1, 1, 0]])
    return x, y


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _rate(rule, feedback="symmetric"):
    torch.manual_seed(3)
    m = RateRNN(N_IN, N, N_OUT, dt=20.0, tau=50.0, activation="tanh")
    options = {"feedback": feedback} if rule == "eprop" else {}
    return bc.apply(m, {"feedback": {"rule": rule, "options": options}})


def _lif(beta, feedback="symmetric", readout="voltage"):
    torch.manual_seed(4)
    m = LIFRNN(N_IN, N, N_OUT, tau_mem=5.0, tau_adapt=8.0, beta=beta, v_th=0.6, readout=readout, tau_out=3.0)
    with torch.no_grad():
        m.recurrent.weight.copy_(torch.tensor([[0.0, 0.8, -0.5], [0.7, 0.0, 0.4], [-0.6, 0.9, 0.0]]))
        m.input.weight.copy_(torch.tensor([[0.9, -0.3], [0.5, 0.6], [-0.4, 0.8]]))
    return bc.apply(m, {"feedback": {"rule": "eprop", "options": {"feedback": feedback}}})


def _traces_match(trace_cls, dyn, hand_traces, pres, ds):
    """Drive ``trace_cls`` with the hand run's presynaptic activities and derivatives; compare e_t at every step."""
    n_pre = pres[0].shape[-1]
    trace = trace_cls(dyn, B, N, n_pre, pres[0])
    for t in range(T):
        e = trace.advance(pres[t], ds[t])
        e = e.full() if hasattr(e, "full") else e
        for b in range(B):
            hand = next(h for bb, tt, h in hand_traces if bb == b and tt == t)
            assert near(e[b], hand), (t, b, e[b], hand)


@pytest.mark.parametrize("rule,feedback", [("eprop", "symmetric"), ("eprop", "random"), ("rflo", None)])
def test_rate_update_equals_hand_recursion(rule, feedback):
    m = _rate(rule, feedback or "random")
    x, y = _data()
    learner = online_learner(m)
    loss, logits = learner.accumulate(x, y)
    fb = m.readout.feedback_weight if (feedback or "random") == "random" else m.readout.weight
    with torch.no_grad():
        hand, _ = rate_hand(m, x, y, fb, rule)
    got = _grads(m)
    for name, g in hand.items():
        assert near(got[name], g), (name, got[name], g)
    assert float(hand["recurrent.weight"].abs().sum()) > 1e-4  # the recursion was exercised
    assert near(loss, sequence_loss(logits, y))


@pytest.mark.parametrize("rule", ["eprop", "rflo"])
def test_rate_traces_equal_hand_recursion(rule):
    m = _rate(rule)
    x, y = _data()
    with torch.no_grad():
        _, traces = rate_hand(m, x, y, m.readout.weight, rule)
    states, pres_in, pres_rec, ds = torch.zeros(B, N), [], [], []
    with torch.no_grad():
        for t in range(T):
            r_prev = torch.tanh(states)
            states, r = m.step(states, x[:, t])
            pres_in.append(x[:, t])
            pres_rec.append(torch.cat([r_prev, torch.ones(B, 1)], 1))
            ds.append(1 - r**2)
    cls = {"eprop": PresynapticTrace, "rflo": RFLOTrace}[rule]
    dyn = Dynamics(lam=1 - m.alpha, g=m.alpha)
    _traces_match(cls, dyn, traces["input"], pres_in, ds)
    _traces_match(cls, dyn, traces["recurrent"], pres_rec, ds)


@pytest.mark.parametrize(
    "beta,feedback,readout",
    [(0.0, "symmetric", "voltage"), (0.7, "random", "voltage"), (0.7, "symmetric", "spike_count")],
)
def test_lif_update_and_traces_equal_hand_recursion(beta, feedback, readout):
    m = _lif(beta, feedback, readout)
    x, y = _data(seed=6, scale=1.5)
    online_learner(m).accumulate(x, y)
    fb = m.readout.feedback_weight if feedback == "random" else m.readout.weight
    with torch.no_grad():
        hand, traces, spikes = lif_hand(m, x, y, fb)
    assert spikes > 0
    got = _grads(m)
    for name, g in hand.items():
        assert near(got[name], g), (name, got[name], g)
    assert float(hand["recurrent.weight"].abs().sum()) > 1e-4 and float(hand["input.weight"].abs().sum()) > 1e-4
    # the traces themselves, driven with the network's own spikes and pseudo-derivatives
    state, pres_in, pres_rec, ds = m.initial_state(B, x), [], [], []
    with torch.no_grad():
        for t in range(T):
            z_prev = state.z
            state, _ = m.step(state, x[:, t])
            pres_in.append(x[:, t])
            pres_rec.append(z_prev)
            dist = state.v - m.v_th - m.beta * state.a
            ds.append(m.gamma / m.v_th * torch.clamp(1 - dist.abs() / m.v_th, min=0))
    dyn = Dynamics(lam=m.alpha, g=1.0, beta=m.beta, rho=m.rho)
    cls = AdaptiveTrace if beta else PresynapticTrace
    _traces_match(cls, dyn, traces["input"], pres_in, ds)
    _traces_match(cls, dyn, traces["recurrent"], pres_rec, ds)


def _autograd(m, x, y):
    m.zero_grad(set_to_none=True)
    logits = m(x)
    sequence_loss(logits, y).backward()
    return _grads(m)


@pytest.mark.parametrize("kind", ["rate", "lif", "alif"])
def test_eprop_symmetric_without_recurrence_is_the_exact_gradient(kind):
    m = _rate("eprop") if kind == "rate" else _lif(0.7 if kind == "alif" else 0.0)
    with torch.no_grad():
        m.recurrent.weight.zero_()
        if m.recurrent.bias is not None:
            m.recurrent.bias.fill_(0.1)
    x, y = _data(seed=5, scale=2.0)
    exact = _autograd(m, x, y)
    m.zero_grad(set_to_none=True)
    online_learner(m).accumulate(x, y)
    got = _grads(m)
    for name, g in exact.items():
        assert near(got[name], g), (name, got[name], g)
    assert float(exact["input.weight"].abs().sum()) > 1e-4 and float(exact["recurrent.weight"].abs().sum()) > 1e-4


def test_eprop_with_recurrence_is_not_the_exact_gradient():
    """The same check with W_rec != 0 fails: the test above can tell e-prop's approximation from BPTT."""
    m = _rate("eprop")
    x, y = _data(seed=5, scale=2.0)
    exact = _autograd(m, x, y)
    m.zero_grad(set_to_none=True)
    online_learner(m).accumulate(x, y)
    assert not near(m.recurrent.weight.grad, exact["recurrent.weight"], tol=1e-8)


def test_rflo_with_linear_units_is_random_eprop():
    """With phi' = 1 RFLO's trace p_t = lam p_{t-1} + g pre_t is e-prop's, and both draw B from the readout's seed:
    the updates agree, which ties RFLO to e-prop's exactness check above."""
    x, y = _data()
    grads = []
    for rule, options in (("rflo", {}), ("eprop", {"feedback": "random"})):
        torch.manual_seed(3)
        m = bc.apply(
            RateRNN(N_IN, N, N_OUT, dt=20.0, tau=50.0, activation="identity"),
            {"feedback": {"rule": rule, "options": options}},
        )
        online_learner(m).accumulate(x, y)
        grads.append(_grads(m))
    for name, g in grads[0].items():
        assert near(g, grads[1][name]), name
    assert float(grads[0]["recurrent.weight"].abs().sum()) > 1e-4
