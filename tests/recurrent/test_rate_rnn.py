"""The rate RNN (biocircuits/models/recurrent.py) against a hand loop of its recursion."""

import math

import pytest
import torch

import biocircuits as bc
from biocircuits.errors import ConfigError
from biocircuits.models import build_model
from biocircuits.models.recurrent import RateRNN


def hand_rollout(m: RateRNN, x: torch.Tensor, xi: torch.Tensor | None = None) -> torch.Tensor:
    """x_{t+1} = (1 - a) x_t + a (W_rec relu(x_t) + W_in u_t + b_rec) + sqrt(2 a) s xi_t; z_t = W_out relu(x_{t+1})
    + b_out, with explicit matmuls, sample by sample."""
    w_in, w_rec, b_rec = m.input.weight, m.recurrent.weight, m.recurrent.bias
    w_out, b_out = m.readout.weight, m.readout.bias
    a = m.dt / m.tau
    out = torch.zeros(x.shape[0], x.shape[1], w_out.shape[0], dtype=x.dtype)
    for b in range(x.shape[0]):
        state = torch.zeros(w_rec.shape[0], dtype=x.dtype)
        for t in range(x.shape[1]):
            r = torch.clamp(state, min=0)
            state = (1 - a) * state + a * (w_rec @ r + w_in @ x[b, t] + b_rec)
            if xi is not None:
                state = state + math.sqrt(2 * a) * m.noise_std * xi[b, t]
            out[b, t] = w_out @ torch.clamp(state, min=0) + b_out
    return out


def test_forward_equals_the_hand_recursion():
    m = RateRNN(3, 5, 2, dt=10.0, tau=50.0).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    assert m.alpha == pytest.approx(0.2)
    torch.testing.assert_close(m(x), hand_rollout(m, x), rtol=1e-12, atol=1e-12)


def test_step_with_given_noise_equals_the_hand_recursion():
    m = RateRNN(3, 4, 2, noise_std=0.3).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    xi = torch.randn(2, 5, 4, dtype=torch.float64)
    state, outs = m.initial_state(2, x), []
    for t in range(5):
        state, r = m.step(state, x[:, t], noise=xi[:, t])
        outs.append(m.readout(r))
    torch.testing.assert_close(torch.stack(outs, 1), hand_rollout(m, x, xi), rtol=1e-12, atol=1e-12)


def test_noise_only_while_training():
    m = RateRNN(2, 4, 2, noise_std=0.5)
    x = torch.randn(3, 4, 2)
    m.eval()
    torch.testing.assert_close(m(x), hand_rollout(m, x))
    m.train()
    assert not torch.allclose(m(x), hand_rollout(m, x))


def test_dale_form_column_signs_and_no_self_connections():
    m = RateRNN(3, 10, 2, dale=0.8, self_connections=False)
    assert m.unit_sign.tolist() == [1.0] * 8 + [-1.0] * 2
    for layer in (m.recurrent, m.readout):
        assert bool(((layer.weight * m.unit_sign) >= 0).all())
    assert bool((m.recurrent.weight.diagonal() == 0).all())
    m(torch.randn(2, 3, 3)).pow(2).sum().backward()
    assert bool((m.recurrent.weight.grad.diagonal() == 0).all())
    assert bool((m.recurrent.weight.grad != 0).any())


def test_registered_builder_and_bad_kwargs():
    m = build_model("rate_rnn", (20, 3), 4, {"n_hidden": 16, "dale": 0.8})
    assert (m.n_in, m.n_hidden, m.n_out) == (3, 16, 4)
    with pytest.raises(ConfigError, match="dt"):
        RateRNN(3, 4, 2, dt=200.0, tau=100.0)
    with pytest.raises(ConfigError, match="activation"):
        RateRNN(3, 4, 2, activation="gelu")


def test_bptt_through_converted_layers_with_bp_equals_autograd():
    torch.manual_seed(1)
    plain = RateRNN(3, 6, 2).double()
    conv = RateRNN(3, 6, 2).double()
    conv.load_state_dict(plain.state_dict())
    bc.apply(conv, {"feedback": {"rule": "bp"}})
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    plain(x).pow(2).sum().backward()
    conv(x).pow(2).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), conv.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-12, atol=1e-12, msg=name)


def test_bptt_fa_equals_the_hand_unrolled_computation():
    torch.manual_seed(2)
    m = bc.apply(RateRNN(3, 5, 2, dale=0.8).double(), {"feedback": {"rule": "fa"}})
    a, T, B = m.alpha, 6, 2
    w_in, w_rec, b_rec, w_out = m.input.weight, m.recurrent.weight, m.recurrent.bias, m.readout.weight
    fb_in, fb_rec, fb_out = (layer.feedback_weight for layer in (m.input, m.recurrent, m.readout))
    u = torch.randn(B, T, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(B, T, 2, dtype=torch.float64)
    (m(u) * g).sum().backward()
    with torch.no_grad():
        xs = [torch.zeros(B, 5, dtype=torch.float64)]  # x_0 .. x_T
        for t in range(T):
            xs.append((1 - a) * xs[t] + a * (xs[t].clamp(min=0) @ w_rec.T + u[:, t] @ w_in.T + b_rec))
        # e_t = dL/dx_t: readout error through B_out, recurrent error through B_rec, leak (1 - a)
        e_next = torch.zeros(B, 5, dtype=torch.float64)
        grads = {
            "in": torch.zeros_like(w_in),
            "rec": torch.zeros_like(w_rec),
            "b": torch.zeros_like(b_rec),
            "out": torch.zeros_like(w_out),
        }
        grad_u = torch.zeros_like(u)
        for t in range(T, 0, -1):  # x_t, t = T .. 1; z_{t-1} reads r_t
            grads["out"] += g[:, t - 1].T @ xs[t].clamp(min=0)
            drive = a * e_next  # dL/d(W_rec r_t + W_in u_t + b) at step t -> t + 1 (zero at t = T)
            d_r = g[:, t - 1] @ fb_out + drive @ fb_rec
            e_t = (1 - a) * e_next + (xs[t] > 0).double() * d_r
            drive_t = a * e_t  # the drive that made x_t, from x_{t-1} and u_{t-1}
            grads["rec"] += drive_t.T @ xs[t - 1].clamp(min=0)
            grads["in"] += drive_t.T @ u[:, t - 1]
            grads["b"] += drive_t.sum(0)
            grad_u[:, t - 1] = drive_t @ fb_in
            e_next = e_t
    for got, want in (
        (w_in.grad, grads["in"]),
        (w_rec.grad, grads["rec"]),
        (b_rec.grad, grads["b"]),
        (w_out.grad, grads["out"]),
        (u.grad, grad_u),
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
