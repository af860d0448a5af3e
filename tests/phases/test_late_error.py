"""Late errors that meet the current state (``error_delay: K``, ``backward_state: current | trace``) reach every
transform of every layer, the last layer's included, and do not depend on what follows the last layer.

Hand reference as in ``test_streams``: y = W2 tanh(W1 x + b1) + b2, e_t = dL_t/dy_t; with K = 1 the backward of
step t starts from e_(t-1) (zero at the first step), and each layer's transforms act on the error that reaches it
from e_(t-1)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.core.seeds import step_seed

from .test_streams import N_H, N_IN, N_OUT, B, data, forward, output_error


class TimesOne(nn.Module):
    """A no-op module that makes a new tensor (y * 1)."""

    def forward(self, y):
        return y * 1.0


def run(phases, batches, tail=(), rule="fa"):
    """Train y = W2 tanh(W1 x + b1) + b2 (then the modules ``tail``); per step the weights before it, the
    gradients it applied and B2."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(N_IN, N_H), nn.Tanh(), nn.Linear(N_H, N_OUT), *tail).double()
    bc.apply(model, {"feedback": {"rule": rule}, "phases": phases})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    out = []
    for x, y in batches:
        w = tuple(p.detach().clone() for p in (model[0].weight, model[0].bias, model[2].weight, model[2].bias))
        b2 = model[2].backward_weight()  # None for dfa (no B of W's shape)
        b2 = None if b2 is None else b2.clone()
        F.cross_entropy(model(x), y).backward()
        out.append((w, tuple(p.grad.clone() for p in model.parameters()), b2))
        opt.step()
        opt.zero_grad()
    return model, out


def rms_rows(t):
    return t.pow(2).mean(1, keepdim=True).sqrt()


@pytest.mark.parametrize("state", ["current", "trace"])
def test_interference_records_the_late_error_in_the_last_layer(state):
    batches, gamma = data(4), 0.3
    phases = {"error_delay": 1, "backward_state": state, "interference": gamma}
    if state == "trace":
        phases["trace_decay"] = 0.0  # a trace with no memory: the plain pairing with the current activity

    def inject(z, s):
        size = rms_rows(s)
        return z + torch.where(size > 0, gamma * rms_rows(z) / size.clamp(min=1e-300), 0 * size) * s

    _, steps = run(phases, batches)
    s1, s2 = torch.zeros(B, N_H, dtype=torch.float64), torch.zeros(B, N_OUT, dtype=torch.float64)
    late = torch.zeros(B, N_OUT, dtype=torch.float64)
    for (w, (g1, _, g2, _), b2), (x, y) in zip(steps, batches, strict=True):
        w1, bias1, w2, bias2 = w
        h = torch.tanh(inject(x @ w1.T + bias1, s1))
        out = inject(h @ w2.T + bias2, s2)
        s2 = late  # the output layer's units hold e_(t-1), not e_t
        s1 = (s2 @ b2) * (1 - h**2)
        assert torch.allclose(g2, s2.T @ h, atol=1e-12)
        assert torch.allclose(g1, s1.T @ x, atol=1e-12)
        late = output_error(out, y)


def test_noise_acts_on_the_late_error_in_every_layer():
    batches, sigma = data(4), 0.3
    model, steps = run({"error_delay": 1, "backward_state": "current", "error_noise": sigma}, batches)
    seeds = [model[i].attachments.error_pathway.seed for i in (0, 2)]

    def noisy(d, seed, t):
        xi = torch.randn(d.shape, generator=torch.Generator().manual_seed(step_seed(seed, t + 1)))
        return d + sigma * d.float().pow(2).mean().sqrt() * xi  # float32 noise, as the transform draws it

    late = torch.zeros(B, N_OUT, dtype=torch.float64)
    for t, ((w, (g1, _, g2, _), b2), (x, y)) in enumerate(zip(steps, batches, strict=True)):
        h, out = forward(w, x)
        d2 = noisy(late, seeds[1], t)  # the output layer's noise on e_(t-1), drawn at step t
        d1 = noisy((d2 @ b2) * (1 - h**2), seeds[0], t)
        assert torch.allclose(g2, d2.T @ h, atol=1e-6)
        assert torch.allclose(g1, d1.T @ x, atol=1e-6)
        if t:
            assert g2.abs().max() > 0
        late = output_error(out, y)  # the queue holds the clean e_t


ALL = {"error_noise": 0.2, "error_quantization": 8, "error_filter": 1.5, "interference": 0.2, "error_delay": 1}


@pytest.mark.parametrize(
    "phases",
    [
        {**ALL, "backward_state": "current"},
        {**ALL, "backward_state": "trace", "trace_decay": 0.5},
        {**ALL, "error_delay": 2, "backward_state": "current", "error_filter": {"tau": 2.0, "cascade": False}},
        {**ALL, "backward_state": "current", "interference": {"gamma": 0.5, "scale": "error"}},
    ],
)
@pytest.mark.parametrize("tail", [(nn.Identity(),), (TimesOne(),), (TimesOne(), nn.Identity())])
def test_a_no_op_after_the_last_layer_changes_nothing(phases, tail):
    batches = data(5)
    plain, steps = run(phases, batches)
    tailed, tailed_steps = run(phases, batches, tail)
    for (_, grads, _), (_, other, _) in zip(steps, tailed_steps, strict=True):
        for a, b in zip(grads, other, strict=True):
            assert torch.equal(a, b)
    assert plain.state_dict().keys() == tailed.state_dict().keys()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, tailed.state_dict()[k]), k


def test_stored_late_errors_are_transformed_on_time_and_only_the_update_waits():
    batches, gamma = data(4), 0.3

    def inject(z, s):
        size = rms_rows(s)
        return z + torch.where(size > 0, gamma * rms_rows(z) / size.clamp(min=1e-300), 0 * size) * s

    _, steps = run({"error_delay": 1, "interference": gamma}, batches)  # backward_state: stored
    s1, s2 = torch.zeros(B, N_H, dtype=torch.float64), torch.zeros(B, N_OUT, dtype=torch.float64)
    made = []
    for (w, (g1, _, g2, _), b2), (x, y) in zip(steps, batches, strict=True):
        w1, bias1, w2, bias2 = w
        h = torch.tanh(inject(x @ w1.T + bias1, s1))
        out = inject(h @ w2.T + bias2, s2)
        s2 = output_error(out, y)  # on time: the units hold this step's error e_t
        s1 = (s2 @ b2) * (1 - h**2)
        assert torch.allclose(g2, s2.T @ h, atol=1e-12)
        assert torch.allclose(g1, s1.T @ x, atol=1e-12)
        made.append((s1.T @ x, s2.T @ h))
    for t in range(1, len(steps) - 1):  # the update of step t is the gradient made at step t - 1
        (w_now, _, _), (w_next, _, _) = steps[t], steps[t + 1]
        assert torch.allclose(w_now[0] - w_next[0], 0.1 * made[t - 1][0], atol=1e-12)
        assert torch.allclose(w_now[2] - w_next[2], 0.1 * made[t - 1][1], atol=1e-12)


def test_direct_feedback_sends_the_late_error_to_every_layer():
    batches = data(4)
    model, steps = run({"error_delay": 1, "backward_state": "current"}, batches, rule="dfa")
    direct = model[2].direct_feedback  # the output layer is a DFA layer: its input gets e D too
    late = torch.zeros(B, N_OUT, dtype=torch.float64)
    for (w, (g1, _, g2, _), _), (x, y) in zip(steps, batches, strict=True):
        h, out = forward(w, x)
        assert torch.allclose(g2, late.T @ h, atol=1e-12)
        assert torch.allclose(g1, ((late @ direct) * (1 - h**2)).T @ x, atol=1e-12)
        late = output_error(out, y)
