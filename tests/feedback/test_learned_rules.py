"""Rules after sign symmetry: Kolen-Pollack, weight mirrors, direct feedback alignment; and the paper's feedback
scales. Every reference is computed by hand in the test."""

import copy
import json
import math

import pytest
import torch
import torchvision
from torch import nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.core.seeds import step_seed
from biocircuits.errors import ConfigError
from biocircuits.probes.alignment import angle
from biocircuits.train.checkpoint import load_checkpoint
from biocircuits.train.trainer import run_experiment

from ..train.helpers import Kill


def trained(model, rule, steps, lr=0.1, wd=0.0, momentum=0.0, options=None, seed=0):
    bc.apply(model, {"feedback": {"rule": rule, "options": options or {}}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd, momentum=momentum), model)
    gen = torch.Generator().manual_seed(seed)
    grads = []
    for _ in range(steps):
        opt.zero_grad()
        x = torch.randn(8, model[0].in_features, generator=gen)
        model(x).pow(2).mean().backward()
        grads.append(model[0].weight.grad.clone())
        yield model, grads
        opt.step()


def test_kolen_pollack_b_follows_its_hand_computed_trajectory():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    lr, wd = 0.1, 0.01
    B = None
    for m, grads in trained(model, "kolen_pollack", 5, lr=lr, wd=wd):
        if B is None:
            B = m[0].feedback_weight.clone()
        else:  # B_{t+1} = B_t - lr (g_t + wd B_t): W's local update delta x^T with B's own decay
            B = B - lr * (grads[-2] + wd * B)
            assert torch.allclose(m[0].feedback_weight, B, atol=1e-6)


def kp_steps(make_opt, steps, options=None, seed=0):
    """Train a small MLP under kolen_pollack with ``make_opt(params)``; yields (model, W's gradient) before each
    step, so a test sees g_t and then B_(t+1)."""
    torch.manual_seed(seed)
    model = bc.apply(
        nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)),
        {"feedback": {"rule": "kolen_pollack", "options": options or {}}},
    )
    opt = bc.bind(make_opt(model.parameters()), model)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(8, 6, generator=gen)).pow(2).mean().backward()
        yield model, model[2].weight.grad.clone()
        opt.step()
    yield model, None


@pytest.mark.parametrize("nesterov,dampening", [(False, 0.0), (True, 0.0), (False, 0.3)])
def test_kolen_pollack_momentum_uses_b_s_own_buffer_by_hand(nesterov, dampening):
    """u_t = g_t + lambda B_t; m_0 = u_0, m_t = mu m_(t-1) + (1 - dampening) u_t; B_(t+1) = B_t - r eta m_t
    (nesterov: u_t + mu m_t): W's buffer (with W's decay terms) never reaches B."""
    lr, wd, mu, r = 0.1, 0.05, 0.9, 0.5

    def make(p):
        return torch.optim.SGD(p, lr=lr, momentum=mu, weight_decay=wd, nesterov=nesterov, dampening=dampening)

    B = m = None
    for model, grad in kp_steps(make, 6, {"lr_scale": r}):
        if B is not None:
            assert torch.allclose(model[2].feedback_weight, B, atol=1e-6)
        if grad is None:
            break
        B = model[2].feedback_weight.clone() if B is None else B
        u = grad + wd * B
        m = u.clone() if m is None else mu * m + (1 - dampening) * u
        B = B - r * lr * (u + mu * m if nesterov else m)
    assert int(model[2].feedback_updates) == 6


@pytest.mark.parametrize("decoupled", [False, True])
def test_kolen_pollack_adam_uses_b_s_own_moments_by_hand(decoupled):
    """Adam: g_t := g_t + lambda B_t; AdamW: B_t := (1 - eta lambda) B_t; then B's own m_t, v_t and
    B_(t+1) = B_t - eta / (1 - beta1^t) m_t / (sqrt(v_t / (1 - beta2^t)) + eps)."""
    lr, wd, (b1, b2), eps = 0.01, 0.1, (0.8, 0.9), 1e-6
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    make = lambda p: cls(p, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)  # noqa: E731
    B = m = v = None
    t = 0
    for model, grad in kp_steps(make, 5):
        if B is not None:
            assert torch.allclose(model[2].feedback_weight, B, atol=1e-6)
        if grad is None:
            break
        B = model[2].feedback_weight.clone() if B is None else B
        t += 1
        if decoupled:
            B, g = B * (1 - lr * wd), grad
        else:
            g = grad + wd * B
        m = (1 - b1) * g if m is None else b1 * m + (1 - b1) * g
        v = (1 - b2) * g * g if v is None else b2 * v + (1 - b2) * g * g
        B = B - lr / (1 - b1**t) * m / ((v / (1 - b2**t)).sqrt() + eps)


def test_kolen_pollack_with_momentum_and_decay_aligns_w_and_b():
    """With its own buffer, D = W - B follows a heavy-ball recursion that no gradient enters: D_(t+1) = D_t - eta e_t,
    e_0 = lambda D_0, e_t = mu e_(t-1) + lambda D_t, so |D_t| / |D_0| = c_t from the scalar recursion; on a task
    where W grows (a random linear teacher) the angle between W and B falls from ~90 degrees."""
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Linear(10, 4)).double(), {"feedback": {"rule": "kolen_pollack"}})
    lr, wd, mu, steps = 0.05, 0.1, 0.9, 200
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd, momentum=mu), model)
    teacher = torch.randn(4, 10, dtype=torch.float64)
    start = angle(model[0].weight, model[0].feedback_weight)[0]
    gap = (model[0].weight.detach() - model[0].feedback_weight).norm()
    for _ in range(steps):
        opt.zero_grad()
        x = torch.randn(16, 10, dtype=torch.float64)
        (model(x) - x @ teacher.t()).pow(2).mean().backward()
        opt.step()
    c, e = 1.0, None
    for _ in range(steps):
        e = wd * c if e is None else mu * e + wd * c
        c = c - lr * e
    shrink = float((model[0].weight.detach() - model[0].feedback_weight).norm() / gap)
    assert shrink == pytest.approx(abs(c), rel=1e-6)
    assert start > 60 and angle(model[0].weight, model[0].feedback_weight)[0] < 30


def test_kolen_pollack_refuses_what_it_cannot_follow_and_warns_without_decay():
    def step(opt_cls, **kw):
        model = bc.apply(nn.Sequential(nn.Linear(4, 3)), {"feedback": {"rule": "kolen_pollack"}})
        opt = bc.bind(opt_cls(model.parameters(), lr=0.1, **kw), model)
        model(torch.randn(2, 4)).sum().backward()
        opt.step()

    with pytest.raises(ConfigError, match="SGD, Adam and AdamW only"):
        step(torch.optim.RMSprop, weight_decay=0.1)
    with pytest.raises(ConfigError, match="without amsgrad"):
        step(torch.optim.Adam, amsgrad=True, weight_decay=0.1)
    with pytest.warns(UserWarning, match="weight decay 0: nothing pulls B towards W"):
        step(torch.optim.SGD)
    with pytest.raises(ConfigError, match="reparametrisation"):
        bc.apply(
            nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)),
            {"feedback": {"rule": "kolen_pollack"}, "dale": {"enforce": "softplus", "exempt": []}},
        )


def test_kolen_pollack_state_loads_into_a_fresh_model_and_resumes():
    """B's buffers are sized at the first step; a fresh model loads a stepped checkpoint and continues exactly."""

    def model_and_opt():
        torch.manual_seed(0)
        m = bc.apply(nn.Sequential(nn.Linear(4, 3)), {"feedback": {"rule": "kolen_pollack"}})
        return m, bc.bind(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01), m)

    def step(m, opt, k):
        opt.zero_grad()
        m(torch.randn(5, 4, generator=torch.Generator().manual_seed(k))).pow(2).sum().backward()
        opt.step()

    a, opt_a = model_and_opt()
    assert a[0].feedback_momentum.numel() == 0
    for k in range(3):
        step(a, opt_a, k)
    b, opt_b = model_and_opt()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # torch's load keeps the tensors it is given
    assert b[0].feedback_momentum.shape == (3, 4)
    for k in range(3, 5):
        step(a, opt_a, k)
        step(b, opt_b, k)
    assert torch.equal(a[0].feedback_weight, b[0].feedback_weight)


def test_one_mirror_iteration_by_hand_and_mirrors_align_b_with_w():
    torch.manual_seed(0)
    layer = bc.apply(
        nn.Sequential(nn.Linear(7, 4)), {"feedback": {"rule": "weight_mirror", "options": {"samples": 16, "lr": 0.1}}}
    )[0]
    rule, W, B0 = layer.rule, layer.weight.detach().clone(), layer.feedback_weight.clone()
    rule.mirror(layer)
    gen = torch.Generator().manual_seed(step_seed(rule.mirror_seed, 1))
    x = torch.randn(16, 7, generator=gen)
    y = x @ W.t()
    assert torch.allclose(layer.feedback_weight, B0 + 0.1 * (y.t() @ x / 16 - 1.0 * B0), atol=1e-6)
    assert torch.equal(layer.weight.detach(), W)  # the mirror phase never writes W
    layer = bc.apply(nn.Sequential(nn.Linear(7, 4)), {"feedback": {"rule": "weight_mirror"}})[0]
    assert angle(layer.weight, layer.feedback_weight)[0] > 45
    for _ in range(100):
        layer.rule.mirror(layer)
    assert angle(layer.weight, layer.feedback_weight)[0] < 10


def test_mirror_noise_has_the_given_std_by_hand():
    """x = s z with z the seeded N(0, 1) draw: after n iterations B_k = B_(k-1) + eta (y_k^T x_k / n - lambda B_(k-1)),
    y_k = x_k W^T, for a linear and a conv layer (one kernel-sized patch: y is one position)."""
    s, eta, lam, n, iters = 2.0, 0.2, 0.5, 32, 3
    opts = {"samples": n, "lr": eta, "weight_decay": lam, "noise_std": s}
    torch.manual_seed(0)
    lin = bc.apply(nn.Sequential(nn.Linear(6, 4)), {"feedback": {"rule": "weight_mirror", "options": opts}})[0]
    conv = bc.apply(nn.Sequential(nn.Conv2d(3, 5, (3, 2))), {"feedback": {"rule": "weight_mirror", "options": opts}})[0]
    for layer in (lin, conv):
        W, B = layer.weight.detach().clone(), layer.feedback_weight.clone()
        for k in range(1, iters + 1):
            layer.rule.mirror(layer)
            gen = torch.Generator().manual_seed(step_seed(layer.rule.mirror_seed, k))
            x = s * torch.randn(n, *W.shape[1:], generator=gen)  # (n, in) or (n, C_in, k_h, k_w)
            flat_x, flat_w = x.reshape(n, -1), W.reshape(W.shape[0], -1)
            y = flat_x @ flat_w.t()  # (n, out): the response
            B = B + eta * ((y.t() @ flat_x / n).reshape(W.shape) - lam * B)
        assert torch.allclose(layer.feedback_weight, B, atol=1e-5)
    # with many samples one full step (eta lambda = 1) lands on the fixed point (s^2 / lambda) W, not W
    lin = bc.apply(
        nn.Sequential(nn.Linear(6, 4)),
        {
            "feedback": {
                "rule": "weight_mirror",
                "options": {"samples": 65_536, "lr": 1.0, "weight_decay": 1.0, "noise_std": s},
            }
        },
    )[0]
    lin.rule.mirror(lin)
    ratio = (lin.feedback_weight * lin.weight.detach()).sum() / lin.weight.detach().pow(2).sum()
    assert float(ratio) == pytest.approx(s**2, rel=0.05)


def test_mirror_phase_runs_every_k_steps_and_aligns_conv_feedback():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 2))
    opts = {"mirror_every": 2, "mirror_steps": 10, "samples": 64, "warmup_steps": 0}
    bc.apply(model, {"feedback": {"rule": "weight_mirror", "options": opts}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.01), model)
    before = angle(model[0].weight, model[0].feedback_weight)[0]
    for step in range(1, 21):
        opt.zero_grad()
        model(torch.randn(4, 3, 5, 5)).sum().backward()
        opt.step()
        assert int(model[0].mirror_count) == 10 * (step // 2)
    assert before > 60 and angle(model[0].weight, model[0].feedback_weight)[0] < 15


def test_dfa_delta_of_every_hidden_layer_is_d_e_times_the_local_derivative():
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)),
        {"feedback": {"rule": "dfa"}},
    )
    x, c = torch.randn(4, 5), torch.randn(4, 3)
    h1 = torch.tanh(model[0](x))
    h2 = torch.tanh(model[2](h1))
    (model(x) * c).sum().backward()
    e = c  # dL/dy at the output
    d2 = (e @ model[4].direct_feedback) * (1 - h2.pow(2))  # delta of layer 2's pre-activation
    d1 = (e @ model[2].direct_feedback) * (1 - h1.pow(2))  # delta of layer 0's pre-activation
    assert torch.allclose(model[4].weight.grad, e.t() @ h2.detach(), atol=1e-6)
    assert torch.allclose(model[2].weight.grad, d2.t() @ h1.detach(), atol=1e-6)
    assert torch.allclose(model[0].weight.grad, d1.t() @ x, atol=1e-6)
    assert model[2].backward_weight() is None


def test_dfa_conv_layer_gets_the_per_channel_signal_broadcast_over_space():
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(
            nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 5)
        ),
        {"feedback": {"rule": "dfa"}},
    )
    x, c = torch.randn(2, 2, 6, 6), torch.randn(2, 5)
    a1 = model[0](x)
    (model(x) * c).sum().backward()
    signal = (c @ model[2].direct_feedback).view(2, 3, 1, 1)  # dL/d(input of conv 2), one value per channel
    delta1 = signal * (a1 > 0)  # through the ReLU's own derivative
    grad = torch.nn.grad.conv2d_weight(x, model[0].weight.shape, delta1)
    assert torch.allclose(model[0].weight.grad, grad, atol=1e-5)


def test_dfa_full_conv_sends_the_error_to_every_unit_by_hand():
    """conv: full: dL/dx[n, c, i, j] = sum_k e[n, k] D[k, (c, i, j)] with D (classes x C_in H W), drawn at the first
    backward from U(+-1/sqrt(C_in H W)); a fresh model loads it; another input size is an error."""

    def net():
        torch.manual_seed(0)
        return bc.apply(
            nn.Sequential(
                nn.Conv2d(2, 3, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(3, 4, 3, stride=2),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(4, 5),
            ),
            {"feedback": {"rule": "dfa", "options": {"conv": "full"}}},
        )

    model = net()
    assert model[2].direct_feedback.numel() == 0
    x, c = torch.randn(2, 2, 6, 6), torch.randn(2, 5)
    a1 = model[0](x)
    (model(x) * c).sum().backward()
    D = model[2].direct_feedback
    bound = 1 / math.sqrt(3 * 6 * 6)
    gen = torch.Generator().manual_seed(model[2].rule.layer_seed)
    R = torch.empty(5, 3 * 6 * 6).uniform_(-bound, bound, generator=gen)
    assert torch.equal(D, R)
    signal = (c @ D).view(2, 3, 6, 6)  # dL/d(input of conv 2): every unit its own value
    delta1 = signal * (a1 > 0)
    grad = torch.nn.grad.conv2d_weight(x, model[0].weight.shape, delta1, padding=1)
    assert torch.allclose(model[0].weight.grad, grad, atol=1e-5)
    fresh = net()
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh[2].direct_feedback, D)
    with pytest.raises(RuntimeError, match="the full pathway needs one input size"):
        model(torch.randn(2, 2, 8, 8)).sum().backward()


def test_paper_scales_follow_the_formula():
    conv = bc.nn.FeedbackConv2d(4, 8, 3, rule="sign_symmetry")
    lin = bc.nn.FeedbackLinear(10, 3, rule="sign_symmetry")
    assert torch.allclose(conv.backward_weight(), torch.sign(conv.weight) * math.sqrt(2 / (3 * 3 * 8)))
    assert torch.allclose(lin.backward_weight(), torch.sign(lin.weight) / math.sqrt(10))
    fa_conv = bc.nn.FeedbackConv2d(16, 64, 3, rule="fa")
    assert float(fa_conv.feedback_weight.std()) == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.05)
    signed = bc.nn.FeedbackConv2d(4, 8, 3, rule="fa", options={"init": "signed"})
    assert torch.equal(signed.feedback_weight, torch.sign(signed.weight.detach()) * math.sqrt(2 / (9 * 8)))


@pytest.mark.parametrize("rule", ["fa", "kolen_pollack", "weight_mirror"])
def test_signed_init_follows_the_weights_of_a_plain_checkpoint(rule):
    """init: signed: a plain state dict (W, no B) gives B = sign(W_loaded) * s; a biocircuits one restores B."""

    def net():
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))

    torch.manual_seed(0)
    model = bc.apply(net(), {"feedback": {"rule": rule, "options": {"init": "signed"}}})
    torch.manual_seed(1)
    plain = net().state_dict()
    model.load_state_dict(plain)
    for i, scale in ((0, math.sqrt(2 / (9 * 8))), (3, 1 / math.sqrt(128))):
        W = plain[f"{i}.weight"]
        assert torch.equal(model[i].weight.detach(), W)
        assert torch.equal(model[i].feedback_weight, torch.sign(W) * scale)
    saved = copy.deepcopy(model.state_dict())
    saved["0.feedback_weight"] = torch.randn_like(saved["0.feedback_weight"])
    model.load_state_dict(saved)
    assert torch.equal(model[0].feedback_weight, saved["0.feedback_weight"])  # a saved B is kept
    twin = copy.deepcopy(model)
    bc.remove(twin)  # the copy's load hook goes, the original's stays
    assert not twin[0]._load_state_dict_post_hooks and len(model[0]._load_state_dict_post_hooks) == 1
    bc.remove(model)
    assert not model[0]._load_state_dict_post_hooks


def test_signed_init_takes_the_signs_dale_leaves():
    torch.manual_seed(0)
    spec = {"feedback": {"rule": "fa", "options": {"init": "signed"}}, "dale": {"exempt": []}}
    model = bc.apply(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), spec)
    for i in (0, 2):
        W = model[i].weight.detach()
        assert torch.allclose(model[i].feedback_weight, torch.sign(W) / math.sqrt(W.shape[1]))


@pytest.mark.parametrize("rule", ["sign_symmetry", "fa"])
def test_resnet18_stage_gradients_near_backprop_with_the_paper_scales(rule):
    """Each stage's weight-gradient norm under the rule is within 0.5x-2x of backprop's at init (64x64)."""

    def stage_norms(spec):
        torch.manual_seed(0)
        model = bc.apply(torchvision.models.resnet18(num_classes=10), spec)
        x, y = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 10
        nn.functional.cross_entropy(model(x), y).backward()
        norms = {}
        for name, p in model.named_parameters():
            if p.dim() > 1 and not name.startswith("fc"):
                norms[name.split(".")[0]] = norms.get(name.split(".")[0], 0.0) + float(p.grad.pow(2).sum())
        return {k: math.sqrt(v) for k, v in norms.items()}

    exact = stage_norms({"feedback": {"rule": "bp"}})
    got = stage_norms({"feedback": {"rule": rule, "overrides": {"fc": "bp"} if rule == "fa" else {}}})
    for stage, norm in exact.items():
        assert 0.5 < got[stage] / norm < 2.0, (stage, got[stage] / norm)


@pytest.mark.parametrize("rule", ["kolen_pollack", "weight_mirror", "dfa"])
def test_learned_feedback_resumes_exactly(tmp_path, rule):
    def exp():
        return Experiment.from_dict(
            {
                "name": "lr",
                "data": {"name": "digits"},
                "model": {"name": "mlp", "kwargs": {"hidden": [16]}},
                "constraints": {"feedback": {"rule": rule}},
                "optim": {"weight_decay": 1e-3},
                "train": {"steps": 10, "batch_size": 16, "deterministic": True, "plots": False},
            }
        )

    assert run_experiment(exp(), tmp_path / "cut", callbacks=[Kill(4)])["interrupted"]
    run_experiment(exp(), tmp_path / "cut", resume=True)
    run_experiment(exp(), tmp_path / "whole")
    a = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    for k in b:
        assert torch.equal(a[k], b[k]), k


def test_dfa_releases_the_output_error_and_never_reuses_it():
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)), {"feedback": {"rule": "dfa"}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    model(torch.randn(4, 5)).sum().backward()
    opt.step()
    assert model[2].rule._pathway.output.error is None  # released after the step
    model(torch.randn(4, 5)).sum().backward()  # a pass that leaves an error behind (no step)
    x = torch.randn(4, 5, requires_grad=True)
    model(x)  # the output layer's forward forgets it ...
    with pytest.raises(RuntimeError, match="without the output layer's backward"):
        model[0](x).sum().backward()  # ... so a loss on hidden features has none to send


def test_dfa_with_a_backprop_output_layer():
    """overrides {4: bp}: the output error is recorded at the bp layer's output; the layer below it gets its delta
    by backprop (W_4^T e), the first layer gets e D_2 from the DFA layer above it."""
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)),
        {"feedback": {"rule": "dfa", "overrides": {"4": "bp"}}},
    )
    assert model[4].rule.name == "bp" and "4.direct_feedback" not in model.state_dict()
    x, e = torch.randn(4, 5), torch.randn(4, 3)
    h1 = torch.tanh(model[0](x))
    h2 = torch.tanh(model[2](h1))
    (model(x) * e).sum().backward()
    d2 = (e @ model[4].weight.detach()) * (1 - h2.pow(2))
    d0 = (e @ model[2].direct_feedback) * (1 - h1.pow(2))
    assert torch.allclose(model[2].weight.grad, d2.t() @ h1.detach(), atol=1e-6)
    assert torch.allclose(model[0].weight.grad, d0.t() @ x, atol=1e-6)
    bc.remove(model)
    assert not model[4]._forward_hooks  # the output hook goes with the rule


def test_the_runner_logs_the_mirror_phase(tmp_path):
    exp = Experiment.from_dict(
        {
            "name": "wm",
            "data": {"name": "digits"},
            "model": {"name": "mlp", "kwargs": {"hidden": [16]}},
            "constraints": {"feedback": {"rule": "weight_mirror", "options": {"mirror_steps": 5}}},
            "train": {"steps": 20, "batch_size": 16, "log_every": 10, "probe_every": None, "plots": False},
        }
    )
    run_experiment(exp, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    mirror = [r for r in rows if r["kind"] == "attachment" and r["attachment"] == "weight_mirror"]
    assert {r["layer"] for r in mirror} == {"1", "3"} and {r["step"] for r in mirror} == {10, 20}
    last = {r["layer"]: r for r in mirror if r["step"] == 20}
    assert last["1"]["mirror_iterations"] == 100 and last["1"]["weight_feedback_angle"] < 45


@pytest.mark.filterwarnings("ignore:.*weight decay 0")
@pytest.mark.parametrize("wd,nesterov,maximize", [(0.05, False, False), (0.0, True, False), (0.05, True, True)])
def test_kolen_pollack_every_layer_by_hand_through_the_shared_scratch_buffer(wd, nesterov, maximize):
    """B's u_t = (-)g_t + lambda B_t is written into one buffer shared by every layer (sized by the largest, the
    middle one here, so the first layer's view is grown from): each layer's B still follows its own hand recursion
    m_t = mu m_(t-1) + u_t, B_(t+1) = B_t - eta (u_t + mu m_t if nesterov else m_t)."""
    lr, mu = 0.1, 0.9
    torch.manual_seed(1)
    model = bc.apply(
        nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 9), nn.Tanh(), nn.Linear(9, 2)),
        {"feedback": {"rule": "kolen_pollack", "options": {"weight_decay": wd}}},
    )
    sgd = torch.optim.SGD(model.parameters(), lr=lr, momentum=mu, weight_decay=wd, nesterov=nesterov, maximize=maximize)
    opt = bc.bind(sgd, model)
    layers = (0, 2, 4)
    B = {i: model[i].feedback_weight.clone() for i in layers}
    m: dict[int, torch.Tensor] = {}
    for _ in range(4):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).mean().backward()
        for i in layers:
            u = (-1 if maximize else 1) * model[i].weight.grad + wd * B[i]
            m[i] = u.clone() if i not in m else mu * m[i] + u
            B[i] = B[i] - lr * (u + mu * m[i] if nesterov else m[i])
        opt.step()
        for i in layers:
            assert torch.allclose(model[i].feedback_weight, B[i], atol=1e-6)
