"""Phases in time under backprop through time (biocircuits/recurrent/phases.py): on rate_rnn with bp, fa and
sign_symmetry the per-step error dE/dz_t entering the network is late, noisy or filtered in time. Reference: the
same model without phases, its per-step errors replaced by the hand recursion of the settings (explicit loops over
steps), sent back by autograd."""

import math

import pytest
import torch
import torch.nn.functional as F

import biocircuits as bc
from biocircuits.core.seeds import layer_seed, step_seed
from biocircuits.errors import ConfigError
from biocircuits.models.recurrent import RateRNN
from biocircuits.recurrent import LIFRNN

from ..builders import recurrent_dale

B, T, N_IN, N, N_OUT = 2, 5, 2, 3, 2


def _model(rule, phases, dale=None):
    torch.manual_seed(3)
    m = RateRNN(N_IN, N, N_OUT, dt=20.0, tau=50.0, activation="tanh", dale=dale)
    spec = {"feedback": {"rule": rule}, "phases": phases}
    if dale is not None:
        spec["dale"] = recurrent_dale(dale)
    return bc.apply(m, spec)


def _loss(z, y):
    return F.cross_entropy(z.reshape(-1, N_OUT), y.reshape(-1))


def _arriving(delta, delay=0, sigma=0.0, tau=0.0, seed=0, trial=0):
    """delta [B, T, n] -> what enters at each step, written out: late by ``delay`` steps, plus sigma rms xi_t (rms
    over the step's [B, n]; xi_t drawn per step from the readout population's generator of the trial), then
    f_t = a f_(t-1) + (1 - a) s_t."""
    gen = torch.Generator().manual_seed(step_seed(layer_seed(layer_seed(seed, ""), "readout"), trial))
    out, f = torch.zeros_like(delta), torch.zeros_like(delta[:, 0])
    for t in range(delta.shape[1]):
        s = delta[:, t - delay].clone() if t >= delay else torch.zeros_like(delta[:, 0])
        if sigma:
            rms = math.sqrt(sum(float(v) ** 2 for v in s.flatten()) / s.numel())
            s = s + sigma * rms * torch.randn(s.shape, generator=gen)
        if tau:
            c = math.exp(-1.0 / tau)
            f = c * f + (1 - c) * s
            s = f.clone()
        out[:, t] = s
    return out


CASES = [
    ({"error_delay": 2, "backward_state": "current"}, {"delay": 2}),
    ({"error_noise": 0.5, "seed": 4}, {"sigma": 0.5, "seed": 4}),
    ({"error_filter": 2.0}, {"tau": 2.0}),
    (
        {"error_delay": 1, "backward_state": "current", "error_noise": 0.3, "seed": 1},
        {"delay": 1, "sigma": 0.3, "seed": 1},
    ),
    ({"error_delay": 1, "backward_state": "current", "error_filter": 1.5}, {"delay": 1, "tau": 1.5}),
]


@pytest.mark.parametrize(
    "rule,phases,hand", [("fa", *case) for case in CASES] + [(r, *CASES[3]) for r in ("bp", "sign_symmetry")]
)
def test_bptt_sends_back_the_errors_as_they_arrive_in_time(rule, phases, hand):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(B, T, N_IN, generator=gen), torch.randint(0, N_OUT, (B, T), generator=gen)
    m, plain = _model(rule, phases), _model(rule, {})
    _loss(m(x), y).backward()
    z = plain(x)
    delta = torch.autograd.grad(_loss(z, y), z, retain_graph=True)[0]
    z.backward(_arriving(delta, **hand))
    for (name, p), q in zip(m.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-7, rtol=1e-5), name
    assert int(m.phase_trial) == 1


def test_bptt_delay_with_dale_keeps_the_signs():
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(B, T, N_IN, generator=gen), torch.randint(0, N_OUT, (B, T), generator=gen)
    m, plain = _model("fa", {"error_delay": 1, "backward_state": "current"}, 0.67), _model("fa", {}, 0.67)
    opt = bc.bind(torch.optim.SGD(m.parameters(), lr=5.0), m)
    _loss(m(x), y).backward()
    z = plain(x)
    z.backward(_arriving(torch.autograd.grad(_loss(z, y), z, retain_graph=True)[0], delay=1))
    assert torch.allclose(m.recurrent.weight.grad, plain.recurrent.weight.grad, atol=1e-7)
    opt.step()
    assert bc.audit(m).violations == 0


def test_evaluation_and_no_grad_forwards_leave_the_errors_and_the_counter_alone():
    m = _model("fa", {"error_noise": 0.5})
    x = torch.randn(B, T, N_IN)
    with torch.no_grad():
        m(x)
    m.eval()
    m(x).sum().backward()
    assert int(m.phase_trial) == 0


def test_lif_rnn_takes_phases_in_time_too():
    torch.manual_seed(0)
    m = bc.apply(LIFRNN(N_IN, N, N_OUT), {"feedback": {"rule": "fa"}, "phases": {"error_filter": 2.0}})
    m(torch.randn(B, T, N_IN)).sum().backward()
    assert int(m.phase_trial) == 1


@pytest.mark.parametrize(
    "phases,words", [({"error_delay": 1}, "stored late error"), ({"interference": 0.1}, "forward pass runs")]
)
def test_bptt_settings_without_meaning_in_time_are_refused(phases, words):
    with pytest.raises(ConfigError, match=words):
        _model("fa", phases)


def test_remove_takes_the_phases_in_time_away():
    m = _model("fa", {"error_noise": 0.5})
    bc.remove(m)
    assert "phase_trial" not in m.state_dict() and not m._forward_hooks


def test_bptt_noise_resumes_exactly_from_the_trial_counter():
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(B, T, N_IN, generator=gen), torch.randint(0, N_OUT, (B, T), generator=gen)
    m = _model("fa", {"error_noise": 0.5, "seed": 3})
    _loss(m(x), y).backward()
    saved = {k: v.clone() for k, v in m.state_dict().items()}
    m.zero_grad()
    _loss(m(x), y).backward()
    fresh = _model("fa", {"error_noise": 0.5, "seed": 3})
    fresh.load_state_dict(saved)
    _loss(fresh(x), y).backward()
    assert int(saved["phase_trial"]) == 1 and torch.equal(fresh.recurrent.weight.grad, m.recurrent.weight.grad)
    first = _model("fa", {"error_noise": 0.5, "seed": 3})
    _loss(first(x), y).backward()
    assert not torch.equal(first.recurrent.weight.grad, m.recurrent.weight.grad)  # each trial draws afresh


def _bptt_by_hand(m, x, y, lam, delay):
    """Backprop through time of the tanh rate network written out step by step, the errors through each layer's
    B (``backward_weight``), dE/dz_t late by ``delay`` steps, every update paired with the presynaptic trace
    xbar_t = lam xbar_(t-1) + (1 - lam) x_t of its own input (u_t, r_t, r_(t+1))."""
    a = m.alpha
    w_in, w_rec, b_rec, w_out, b_out = (
        t.detach() for t in (m.input.weight, m.recurrent.weight, m.recurrent.bias, m.readout.weight, m.readout.bias)
    )
    b_rc, b_o = m.recurrent.backward_weight(), m.readout.backward_weight()  # (W_in's error goes nowhere)
    states, zs = [torch.zeros(B, N)], []
    for t in range(T):
        drive = torch.tanh(states[t]) @ w_rec.T + b_rec + x[:, t] @ w_in.T
        states.append((1 - a) * states[t] + a * drive)
        zs.append(torch.tanh(states[t + 1]) @ w_out.T + b_out)
    dz = [(torch.softmax(z, -1) - F.one_hot(y[:, t], N_OUT)) / (B * T) for t, z in enumerate(zs)]
    dz = [dz[t - delay] if t >= delay else torch.zeros_like(dz[0]) for t in range(T)]

    def bars(seq):
        out, bar = [], torch.zeros_like(seq[0])
        for v in seq:
            bar = lam * bar + (1 - lam) * v
            out.append(bar)
        return out

    u_bar = bars([x[:, t] for t in range(T)])
    r_bar = bars([torch.tanh(states[t]) for t in range(T)])  # W_rec's input at step t
    o_bar = bars([torch.tanh(states[t + 1]) for t in range(T)])  # W_out's input at step t
    g = {n: torch.zeros_like(p) for n, p in m.named_parameters()}
    carry, g_x_next = torch.zeros(B, N), torch.zeros(B, N)
    for t in range(T - 1, -1, -1):
        g_r = dz[t] @ b_o + carry
        g_x = g_r * (1 - torch.tanh(states[t + 1]) ** 2) + (1 - a) * g_x_next
        g_drive = a * g_x
        g["input.weight"] += g_drive.T @ u_bar[t]
        g["recurrent.weight"] += g_drive.T @ r_bar[t]
        g["recurrent.bias"] += g_drive.sum(0)
        g["readout.weight"] += dz[t].T @ o_bar[t]
        g["readout.bias"] += dz[t].sum(0)
        carry, g_x_next = g_drive @ b_rc, g_x
    return g


@pytest.mark.parametrize("rule,delay", [("bp", 0), ("fa", 2)])
def test_bptt_trace_pairs_each_error_with_the_presynaptic_trace(rule, delay):
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(B, T, N_IN, generator=gen), torch.randint(0, N_OUT, (B, T), generator=gen)
    phases = {"backward_state": "trace", "trace_decay": 0.6, "error_delay": delay}
    m = _model(rule, phases)
    _loss(m(x), y).backward()
    expected = _bptt_by_hand(m, x, y, 0.6, delay)
    for name, p in m.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-7, rtol=1e-5), (name, p.grad, expected[name])
    plain = _model(rule, {"error_delay": delay, "backward_state": "current"} if delay else {})
    _loss(plain(x), y).backward()
    assert not torch.allclose(plain.recurrent.weight.grad, m.recurrent.weight.grad, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(m(x), plain(x))  # the forward is unchanged


def test_bptt_trace_is_refused_for_lif_rnn():
    with pytest.raises(ConfigError, match="built for rate_rnn"):
        bc.apply(LIFRNN(N_IN, N, N_OUT), {"feedback": {"rule": "fa"}, "phases": {"backward_state": "trace"}})


def test_bptt_settings_off_are_bit_identical_and_attach_nothing():
    x, y = torch.randn(B, T, N_IN), torch.randint(0, N_OUT, (B, T))
    grads = []
    for phases in ({}, {"error_delay": 0, "error_noise": 0.0, "error_filter": 0.0, "backward_state": "current"}):
        m = _model("fa", phases)
        assert "phase_trial" not in m.state_dict() and not m._forward_hooks
        _loss(m(x), y).backward()
        grads.append([p.grad for p in m.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
