"""Backprop through time of the rate RNN as one op per sequence (biocircuits/models/rate_bptt.py) against a hand
recursion, against plain autograd (rule bp) and against the step-by-step path it replaces."""

import math

import pytest
import torch

import biocircuits as bc
from biocircuits.feedback.functional import save_weight_for_shadow
from biocircuits.models.rate_bptt import RateRecurrence
from biocircuits.models.recurrent import RateRNN

# phi and phi' written out for the hand recursion
HAND = {
    "tanh": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    "sigmoid": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    "softplus": (lambda x: torch.log1p(torch.exp(x)), torch.sigmoid),
    "relu": (lambda x: x.clamp(min=0), lambda x: (x > 0).double()),
}


def hand_bptt(m: RateRNN, u: torch.Tensor, g: torch.Tensor, xi: torch.Tensor, fb: dict) -> dict:
    """Gradients of sum(z * g) by explicit loops: x_{t+1} = (1 - a) x_t + a (W_rec r_t + W_in u_t + b) + c xi_t,
    z_t = W_out r_{t+1} + b_out; errors through fb["out"], fb["rec"], fb["in"] (each B already times its scale)."""
    phi, dphi = HAND[m.activation]
    a, c, (B, T, _) = m.alpha, math.sqrt(2 * m.alpha) * m.noise_std, u.shape
    w_in, w_rec, b_rec = m.input.weight.detach(), m.recurrent.weight.detach(), m.recurrent.bias.detach()
    xs = [torch.zeros(B, m.n_hidden, dtype=torch.float64)]
    for t in range(T):
        xs.append((1 - a) * xs[t] + a * (phi(xs[t]) @ w_rec.T + u[:, t] @ w_in.T + b_rec) + c * xi[:, t])
    out = {"in": 0, "rec": 0, "b": 0, "out": 0, "b_out": 0, "u": torch.zeros_like(u)}
    e_next = torch.zeros(B, m.n_hidden, dtype=torch.float64)  # dL/dx_{t+1}
    for t in range(T, 0, -1):
        out["out"] = out["out"] + g[:, t - 1].T @ phi(xs[t])
        out["b_out"] = out["b_out"] + g[:, t - 1].sum(0)
        d_r = g[:, t - 1] @ fb["out"] + (a * e_next) @ fb["rec"]  # dL/dr_t: readout, then recurrence
        e_t = (1 - a) * e_next + dphi(xs[t]) * d_r
        d = a * e_t  # dL/d(drive that made x_t)
        out["rec"] = out["rec"] + d.T @ phi(xs[t - 1])
        out["in"] = out["in"] + d.T @ u[:, t - 1]
        out["b"] = out["b"] + d.sum(0)
        out["u"][:, t - 1] = d @ fb["in"]
        e_next = e_t
    return out


def grads_of(m: RateRNN, u: torch.Tensor) -> dict:
    return {
        "in": m.input.weight.grad,
        "rec": m.recurrent.weight.grad,
        "b": m.recurrent.bias.grad,
        "out": m.readout.weight.grad,
        "b_out": m.readout.bias.grad,
        "u": u.grad,
    }


def run(m: RateRNN, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(u, g, xi): one training forward and backward of sum(z * g) with the private noise drawn from ``seed``."""
    gen = torch.Generator().manual_seed(3)
    u = torch.randn(2, 5, 3, dtype=torch.float64, generator=gen).requires_grad_()
    g = torch.randn(2, 5, 2, dtype=torch.float64, generator=gen)
    torch.manual_seed(seed)
    (m(u) * g).sum().backward()
    torch.manual_seed(seed)  # the forward draws xi_t [B, N] once per step, after the step's drive
    xi = torch.stack([torch.randn(2, m.n_hidden, dtype=torch.float64) for _ in range(5)], 1)
    return u, g, xi


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
def test_sign_symmetry_with_noise_equals_the_hand_recursion(activation):
    torch.manual_seed(0)
    m = bc.apply(
        RateRNN(3, 4, 2, noise_std=0.2, activation=activation).double(), {"feedback": {"rule": "sign_symmetry"}}
    )
    u, g, xi = run(m)
    fb = {
        k: torch.sign(layer.weight.detach()) / layer.in_features**0.5
        for k, layer in zip(("in", "rec", "out"), (m.input, m.recurrent, m.readout), strict=True)
    }
    want = hand_bptt(m, u.detach(), g, xi, fb)
    for key, got in grads_of(m, u).items():
        torch.testing.assert_close(got, want[key], rtol=1e-12, atol=1e-12, msg=key)


def test_random_batch_draws_once_per_sequence():
    """brSF redraws |R| once per training forward: once per sequence, not once per time step."""
    torch.manual_seed(0)
    spec = {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "random_batch"}}}
    m = bc.apply(RateRNN(3, 4, 2, activation="tanh").double(), spec)
    u, g, xi = run(m)
    assert int(m.recurrent.feedback_step) == 1
    fb = {
        k: torch.sign(layer.weight.detach()) * layer.feedback_weight
        for k, layer in zip(("in", "rec", "out"), (m.input, m.recurrent, m.readout), strict=True)
    }
    want = hand_bptt(m, u.detach(), g, xi, fb)
    torch.testing.assert_close(m.recurrent.weight.grad, want["rec"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "softplus"])
def test_bp_equals_plain_autograd_with_noise_and_no_self_connections(activation):
    torch.manual_seed(1)
    kwargs = {"noise_std": 0.3, "activation": activation, "self_connections": False}
    plain = RateRNN(3, 4, 2, **kwargs).double()
    conv = bc.apply(RateRNN(3, 4, 2, **kwargs).double(), {"feedback": {"rule": "bp"}})
    conv.load_state_dict(plain.state_dict())
    u_plain, _, _ = run(plain)
    u_conv, _, _ = run(conv)
    for key, want in grads_of(plain, u_plain).items():
        assert torch.equal(grads_of(conv, u_conv)[key], want), key  # bp is plain autograd, bit for bit
    assert bool((conv.recurrent.weight.grad.diagonal() == 0).all())


def test_one_op_per_sequence_and_the_step_by_step_path_agrees():
    """A converted model's graph has one recurrence node; under a probe's shadow forward (which needs W kept at every
    step) the model runs step by step, with the same gradients."""
    torch.manual_seed(2)
    fused = bc.apply(RateRNN(3, 4, 2, activation="tanh").double(), {"feedback": {"rule": "fa"}})
    stepped = bc.apply(RateRNN(3, 4, 2, activation="tanh").double(), {"feedback": {"rule": "fa"}})
    stepped.load_state_dict(fused.state_dict())
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    z = fused(x)
    nodes, todo = set(), [z.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            todo += [n for n, _ in node.next_functions]
    assert sum(type(n).__name__ == f"{RateRecurrence.__name__}Backward" for n in nodes) == 1
    z.pow(2).sum().backward()
    with save_weight_for_shadow():
        stepped(x).pow(2).sum().backward()
    for p, q in zip(fused.parameters(), stepped.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12)
