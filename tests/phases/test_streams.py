"""Per-stream phases settings (late errors meeting the current state, eligibility traces, continuous errors,
interference) against hand computations on a 2-layer MLP: y = W2 tanh(W1 x + b1) + b2, L = mean cross-entropy.

Hand reference, one step with batch x (B, n_in): h = tanh(W1 x + b1), e = dL/dy = (softmax(y) - onehot) / B;
the output layer's update is delta2^T h, the hidden error delta1 = (delta2 B2) * (1 - h^2), its update
delta1^T x, where B2 is the rule's feedback matrix (s B, read from the layer)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.errors import ConfigError

from ..builders import build_batches, build_mlp

RULES = ["bp", "fa", "sign_symmetry"]
B, N_IN, N_H, N_OUT, T = 6, 5, 7, 4, 3


def data(steps=T, seed=1):
    return build_batches(steps, B, N_IN, N_OUT, seed)


def net(rule, phases, seed=0):
    model = build_mlp(N_IN, N_H, N_OUT, act=nn.Tanh, dtype=torch.float64, seed=seed)
    bc.apply(model, {"feedback": {"rule": rule}, "phases": phases})
    return model, bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)


def run(rule, phases, batches, accum=1):
    """Train on ``batches``; per step, the weights before it, the gradients it applied and B2."""
    model, opt = net(rule, phases)
    out = []
    for x, y in batches:
        w = (
            model[0].weight.detach().clone(),
            model[0].bias.detach().clone(),
            model[2].weight.detach().clone(),
            model[2].bias.detach().clone(),
        )
        b2 = model[2].backward_weight().clone()
        for xs, ys in zip(x.chunk(accum), y.chunk(accum), strict=True):
            (F.cross_entropy(model(xs), ys) / accum).backward()
        out.append((w, (model[0].weight.grad.clone(), model[2].weight.grad.clone()), b2))
        opt.step()
        opt.zero_grad()
    return model, out


def forward(w, x):
    w1, b1, w2, b2 = w
    h = torch.tanh(x @ w1.T + b1)
    return h, h @ w2.T + b2


def output_error(y, target):
    return (torch.softmax(y, 1) - F.one_hot(target, N_OUT).double()) / y.shape[0]


@pytest.mark.parametrize(
    "phases",
    [
        {},
        {"error_delay": 0, "backward_state": "current"},
        {"backward_state": "trace", "trace_decay": 0.0},
        {"error_filter": 0},
        {"interference": 0.0},
    ],
)
def test_settings_off_are_bit_identical_to_the_plain_step(phases):
    plain, _ = run("sign_symmetry", {}, data(4))
    other, _ = run("sign_symmetry", phases, data(4))
    for a, b in zip(plain.state_dict().values(), other.state_dict().values(), strict=False):
        assert torch.equal(a, b)
    assert set(other.state_dict()) == set(plain.state_dict())  # nothing attached


@pytest.mark.parametrize("rule", RULES)
def test_current_late_error_meets_the_activity_of_its_step(rule):
    batches = data()
    _, steps = run(rule, {"error_delay": 1, "backward_state": "current"}, batches)
    late = None
    for (w, (g1, g2), b2), (x, y) in zip(steps, batches, strict=True):
        h, out = forward(w, x)
        if late is None:  # step 1: no error has arrived yet
            assert g1.abs().max() == 0 and g2.abs().max() == 0
        else:  # e_(t-1) through h_t, f'(a_t) and B2
            d1 = (late @ b2) * (1 - h**2)
            assert torch.allclose(g2, late.T @ h, atol=1e-12)
            assert torch.allclose(g1, d1.T @ x, atol=1e-12)
        late = output_error(out, y)


@pytest.mark.parametrize("rule", RULES)
def test_trace_pairs_the_error_with_the_presynaptic_trace(rule):
    batches, lam = data(), 0.6
    _, steps = run(rule, {"backward_state": "trace", "trace_decay": lam}, batches)
    xbar, hbar = torch.zeros(B, N_IN, dtype=torch.float64), torch.zeros(B, N_H, dtype=torch.float64)
    for (w, (g1, g2), b2), (x, y) in zip(steps, batches, strict=True):
        h, out = forward(w, x)
        xbar, hbar = lam * xbar + (1 - lam) * x, lam * hbar + (1 - lam) * h
        d2 = output_error(out, y)
        d1 = (d2 @ b2) * (1 - h**2)
        assert torch.allclose(g2, d2.T @ hbar, atol=1e-12)
        assert torch.allclose(g1, d1.T @ xbar, atol=1e-12)


def test_trace_with_a_late_error_and_a_time_constant():
    batches, tau = data(4), 2.0
    lam = torch.exp(torch.tensor(-1 / tau, dtype=torch.float64))
    _, steps = run("fa", {"error_delay": 2, "backward_state": "trace", "trace_tau": tau}, batches)
    xbar, queue = torch.zeros(B, N_IN, dtype=torch.float64), []
    for t, ((w, (g1, _), b2), (x, y)) in enumerate(zip(steps, batches, strict=True)):
        h, out = forward(w, x)
        xbar = lam * xbar + (1 - lam) * x
        late = queue[t - 2] if t >= 2 else torch.zeros(B, N_OUT, dtype=torch.float64)
        assert torch.allclose(g1, ((late @ b2) * (1 - h**2)).T @ xbar, atol=1e-12)
        queue.append(output_error(out, y))


def test_error_filter_follows_its_recursion_in_every_layer():
    batches, tau = data(), 2.0
    a = torch.exp(torch.tensor(-1 / tau, dtype=torch.float64))
    _, steps = run("sign_symmetry", {"error_filter": tau}, batches)
    e2, e1 = torch.zeros(B, N_OUT, dtype=torch.float64), torch.zeros(B, N_H, dtype=torch.float64)
    for (w, (g1, g2), b2), (x, y) in zip(steps, batches, strict=True):
        h, out = forward(w, x)
        e2 = a * e2 + (1 - a) * output_error(out, y)
        e1 = a * e1 + (1 - a) * (e2 @ b2) * (1 - h**2)
        assert torch.allclose(g2, e2.T @ h, atol=1e-12)
        assert torch.allclose(g1, e1.T @ x, atol=1e-12)


def test_interference_adds_the_last_feedback_signal_to_the_activity():
    batches, gamma = data(), 0.3

    def rms(t):
        return t.pow(2).mean(1, keepdim=True).sqrt()

    def inject(z, s):
        size = rms(s)
        return z + torch.where(size > 0, gamma * rms(z) / size.clamp(min=1e-300), 0 * size) * s

    _, steps = run("fa", {"interference": gamma}, batches)
    s1, s2 = torch.zeros(B, N_H, dtype=torch.float64), torch.zeros(B, N_OUT, dtype=torch.float64)
    for (w, (g1, g2), b2), (x, y) in zip(steps, batches, strict=True):
        w1, bias1, w2, bias2 = w
        z1 = inject(x @ w1.T + bias1, s1)
        h = torch.tanh(z1)
        out = inject(h @ w2.T + bias2, s2)
        s2 = output_error(out, y)
        s1 = (s2 @ b2) * (1 - h**2)
        assert torch.allclose(g2, s2.T @ h, atol=1e-12)
        assert torch.allclose(g1, s1.T @ x, atol=1e-12)


def test_micro_batches_are_rows_of_the_same_streams():
    phases = {"error_delay": 1, "backward_state": "trace", "trace_decay": 0.5, "error_filter": 1.5, "interference": 0.2}
    whole, _ = run("sign_symmetry", phases, data(4))
    split, _ = run("sign_symmetry", phases, data(4), accum=3)
    for (k, a), b in zip(whole.state_dict().items(), split.state_dict().values(), strict=True):
        if k.endswith("phase_step"):  # counts backward passes: 3 per step when split
            assert b == 3 * a
        else:
            assert torch.allclose(a, b, atol=1e-12), k


def test_evaluation_and_probes_leave_the_streams_alone():
    phases = {"error_delay": 2, "backward_state": "trace", "trace_decay": 0.5, "error_filter": 2, "interference": 0.3}
    model, _ = run("fa", phases, data(3))
    plain, _ = run("fa", {}, data(3))
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = data(1, seed=5)[0]
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))  # no interference outside a training forward
    model.eval()
    assert torch.equal(model(x), plain.eval()(x))
    model.train()
    bc.probe(model, x, y)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_a_batch_that_does_not_fit_the_streams_is_an_error():
    model, opt = net("bp", {"backward_state": "trace", "trace_decay": 0.5})
    for n in (B, B + 2):
        x = torch.randn(n, N_IN, dtype=torch.float64)
        if n > B:
            with pytest.raises(ConfigError, match="does not fit the 6 streams"):
                model(x)
        else:
            model(x).sum().backward()
            opt.step()


@pytest.mark.parametrize(
    "phases, words",
    [
        ({"eligibility_decay": 0.9}, ["phases.eligibility_decay", "momentum", "backward_state: trace"]),
        ({"trace_decay": 0.5}, ["phases.backward_state", "set backward_state: trace"]),
        ({"backward_state": "trace", "trace_decay": 0.5, "trace_tau": 3}, ["phases.trace_tau", "not both"]),
        ({"late_error": 2}, ["phases.late_error", "unknown key", "error_delay"]),
        ({"error_filter": -1}, ["phases.error_filter"]),
    ],
)
def test_bad_phases_settings_say_what_to_write(phases, words):
    with pytest.raises(ConfigError) as err:
        bc.apply(nn.Linear(2, 2), {"phases": phases})
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_noise_then_filter_compose_in_that_order():
    from biocircuits.core.seeds import step_seed

    batches, tau, sigma = data(), 2.0, 0.3
    a = torch.exp(torch.tensor(-1 / tau, dtype=torch.float64))
    model, steps = run("bp", {"error_noise": sigma, "error_filter": tau}, batches)
    seed = model[2].attachments.error_pathway.seed
    e2 = torch.zeros(B, N_OUT, dtype=torch.float64)
    for t, ((w, (_, g2), _), (x, y)) in enumerate(zip(steps, batches, strict=True)):
        h, out = forward(w, x)
        d = output_error(out, y)
        xi = torch.randn(d.shape, generator=torch.Generator().manual_seed(step_seed(seed, t + 1)))
        noisy = d + sigma * d.float().pow(2).mean().sqrt() * xi  # float32 noise, as the transform draws it
        e2 = a * e2 + (1 - a) * noisy
        assert torch.allclose(g2, e2.T @ h, atol=1e-6)


def test_trace_in_a_convolution_pairs_the_error_with_the_traced_input():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=2).double()
    model = nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)).double()
    lam = 0.7
    bc.apply(model, {"feedback": {"rule": "sign_symmetry"}, "phases": {"backward_state": "trace", "trace_decay": lam}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    deltas = []

    def record(module, args, out):
        out.register_hook(lambda g: deltas.append(g.clone()))

    model[0].register_forward_hook(record)
    xbar = torch.zeros(5, 2, 6, 6, dtype=torch.float64)
    for t in range(3):
        x = torch.randn(5, 2, 6, 6, dtype=torch.float64)
        model(x).pow(2).sum().backward()
        xbar = lam * xbar + (1 - lam) * x
        want = torch.nn.grad.conv2d_weight(xbar, conv.weight.shape, deltas[-1], stride=2, padding=1)
        assert torch.allclose(model[0].weight.grad, want, atol=1e-12), t
        opt.step()
        opt.zero_grad()
