"""The online rules' ``update: per_step`` (biocircuits/recurrent/learner.py): each step's part of the update is
applied by an optimiser step at the end of that step, so the weights change within the trial; against a hand
recursion of a 3-unit rate network over 4 steps with SGD (every sample, unit and synapse in explicit loops)."""

import copy

import pytest
import torch

import biocircuits as bc
from biocircuits.errors import ConfigError
from biocircuits.models.recurrent import RateRNN
from biocircuits.phases.step import PhasedStep
from biocircuits.recurrent import online_learner, online_step

from .hand import near, softmax_error

B, T, N_IN, N, N_OUT, LR = 2, 4, 2, 3, 2, 0.5


pytestmark = pytest.mark.usefixtures("float64")  # hand recursions in double precision


def _model(rule, update="per_step"):
    torch.manual_seed(3)
    m = RateRNN(N_IN, N, N_OUT, dt=20.0, tau=50.0, activation="tanh")
    return bc.apply(m, {"feedback": {"rule": rule, "options": {"update": update}}})


def _hand(m, x, y, rule):
    """The weights after the trial: at every step t the network steps with W_t, then W_(t+1) = W_t - lr Delta_t,
    Delta_t = sum_b of the step's update (rflo: B fixed random; eprop symmetric: B = W_out,t)."""
    a = m.alpha
    w_in, w_rec, b_rec = (p.detach().clone() for p in (m.input.weight, m.recurrent.weight, m.recurrent.bias))
    w_out, b_out = m.readout.weight.detach().clone(), m.readout.bias.detach().clone()
    fixed = m.readout.feedback_weight.clone() if rule == "rflo" else None
    state = [torch.zeros(N) for _ in range(B)]
    p_in, p_rec = [torch.zeros(N, N_IN) for _ in range(B)], [torch.zeros(N, N + 1) for _ in range(B)]
    for t in range(T):
        d_in, d_rec, d_out, d_bout = torch.zeros(N, N_IN), torch.zeros(N, N + 1), torch.zeros(N_OUT, N), torch.zeros(2)
        feedback = fixed if fixed is not None else w_out.clone()
        for b in range(B):
            r_prev = torch.tanh(state[b])
            state[b] = (1 - a) * state[b] + a * (w_rec @ r_prev + w_in @ x[b, t] + b_rec)
            r = torch.tanh(state[b])
            d = 1 - r**2
            err = softmax_error(w_out @ r + b_out, int(y[b, t]), B * int((y[b] >= 0).sum()))
            signal = [sum(feedback[k, j] * err[k] for k in range(N_OUT)) for j in range(N)]
            for p, delta, pre in ((p_in[b], d_in, x[b, t]), (p_rec[b], d_rec, torch.cat([r_prev, torch.ones(1)]))):
                for j in range(N):
                    for i in range(len(pre)):
                        if rule == "eprop":
                            p[j, i] = (1 - a) * p[j, i] + a * pre[i]
                            delta[j, i] += signal[j] * d[j] * p[j, i]
                        else:
                            p[j, i] = (1 - a) * p[j, i] + a * d[j] * pre[i]
                            delta[j, i] += signal[j] * p[j, i]
            d_out += torch.outer(err, r)
            d_bout += err
        w_in, w_rec, b_rec = w_in - LR * d_in, w_rec - LR * d_rec[:, :N], b_rec - LR * d_rec[:, N]
        w_out, b_out = w_out - LR * d_out, b_out - LR * d_bout
    return {
        "input.weight": w_in,
        "recurrent.weight": w_rec,
        "recurrent.bias": b_rec,
        "readout.weight": w_out,
        "readout.bias": b_out,
    }


def _data():
    gen = torch.Generator().manual_seed(1)
    return 2.0 * torch.randn(B, T, N_IN, generator=gen), torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1]])


@pytest.mark.parametrize("rule", ["rflo", "eprop"])
def test_per_step_updates_within_the_trial_equal_hand_recursion(rule):
    m, x, y = _model(rule), *_data()
    per_trial = _model(rule, "per_trial")
    expected = _hand(m, x, y, rule)
    opt = torch.optim.SGD(m.parameters(), lr=LR)
    online_learner(m).accumulate(x, y, on_step=lambda: (opt.step(), opt.zero_grad(set_to_none=True)))
    for name, param in m.named_parameters():
        assert near(param.detach(), expected[name]), (name, param, expected[name])
    opt_trial = torch.optim.SGD(per_trial.parameters(), lr=LR)
    online_learner(per_trial).accumulate(x, y)
    opt_trial.step()
    assert not near(
        per_trial.recurrent.weight.detach(), m.recurrent.weight.detach(), 1e-6
    )  # the steps in between mattered


def test_the_training_step_applies_per_step_updates_and_its_update_phase_adds_nothing():
    m, x, y = _model("eprop"), *_data()
    reference = copy.deepcopy(m)
    opt = bc.bind(torch.optim.SGD(m.parameters(), lr=LR), m)
    step = online_step(PhasedStep(m, opt, lambda out, tgt: out.sum()), m)
    ctx = step.forward(x, y, 0)
    step.backward(ctx)
    step.update(ctx)
    expected = _hand(reference, x, y, "eprop")
    for name, param in m.named_parameters():
        assert near(param.detach(), expected[name]), name


def test_per_step_needs_the_optimiser_step_and_no_clipping():
    m, x, y = _model("rflo"), *_data()
    with pytest.raises(ValueError, match="on_step"):
        online_learner(m).accumulate(x, y)
    opt = torch.optim.SGD(m.parameters(), lr=LR)
    with pytest.raises(ConfigError, match="grad_clip"):
        online_step(PhasedStep(m, opt, lambda out, tgt: out.sum(), grad_clip=1.0), m)
