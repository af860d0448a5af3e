"""DANN layers (dale.architecture: dann): forward, gradients, initialisation and corrected updates against hand
computations; every weight stays non-negative under SGD and Adam."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc


def parts(layer):
    p = layer.parametrizations.weight[0]
    return layer.parametrizations.weight.original, p.weight_ie, p.weight_ei, p


def test_init_is_centred_and_forward_and_gradients_equal_the_hand_computation(mlp):
    torch.manual_seed(0)
    model = bc.apply(mlp(6, 20, 10, 3), {"dale": {"architecture": "dann"}})
    layer = model[2]
    w_ee, w_ie, w_ei, _ = parts(layer)
    n_i = 1  # round(0.1 * 10)
    assert w_ie.shape == (n_i, 20) and w_ei.shape == (10, n_i)
    assert torch.allclose(w_ie, w_ee.mean(0, keepdim=True).expand(n_i, 20)) and bool((w_ei == 1.0 / n_i).all())
    lam = math.sqrt(20 * (2 * math.pi - 1) / (2 * math.pi))
    assert abs(float(w_ee.detach().mean()) - 1 / lam) < 0.35 / lam  # Exponential(lambda): mean 1/lambda, 200 draws
    x = torch.rand(7, 20, requires_grad=True)
    out = layer(x)
    want = x @ w_ee.T - (x @ w_ie.T) @ w_ei.T + layer.bias  # z = W_EE x - W_EI (W_IE x) + b
    assert torch.allclose(out, want, atol=1e-6)
    assert torch.allclose(out.mean(1), layer.bias.mean().expand(7), atol=1e-5)  # centred over the E units
    r = torch.randn(7, 10)
    (out * r).sum().backward()
    assert torch.allclose(w_ee.grad, r.T @ x, atol=1e-5)  # dL/dW_EE = r^T x
    assert torch.allclose(w_ie.grad, -w_ei.T @ r.T @ x, atol=1e-5)  # dL/dW_IE = -W_EI^T r^T x
    assert torch.allclose(w_ei.grad, -(r.T @ x) @ w_ie.T, atol=1e-5)  # dL/dW_EI = -(r^T x) W_IE^T
    w = w_ee - w_ei @ w_ie
    assert torch.allclose(x.grad, r @ w, atol=1e-5)  # bp: grad_x = r W


def test_divisive_forward_and_conv():
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(
            nn.Conv2d(3, 8, 3),
            nn.ReLU(),
            nn.Conv2d(8, 20, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(20 * 16, 4),
        ),
        {"dale": {"architecture": "dann", "dann": {"divisive": True, "inhibitory_fraction": 0.2}}},
    )
    conv, fc = model[2], model[5]
    w_ee, w_ie, w_ei, p = parts(conv)
    assert w_ie.shape == (4, 8, 3, 3) and bool((p.gain == 1).all())
    assert torch.allclose(p.alpha, torch.full((4,), math.log(math.sqrt(2 * math.pi - 1) / math.sqrt(72))))
    with torch.no_grad():
        p.gain.uniform_(0.5, 2.0)
        conv.bias.uniform_(-1, 1)
    x = torch.rand(2, 8, 4, 4)
    h = F.conv2d(x, w_ie, padding=1) * p.alpha.exp().view(1, -1, 1, 1)  # exp(alpha) * (W_IE x)
    gamma = torch.einsum("nihw,oi->nohw", h, w_ei)  # W_EI (...)
    wx = F.conv2d(x, w_ee - (w_ei @ w_ie.reshape(4, -1)).view_as(w_ee), padding=1)
    want = p.gain.view(1, -1, 1, 1) * wx / (gamma + 1e-6) + conv.bias.view(1, -1, 1, 1)
    assert torch.allclose(conv(x), want, atol=1e-5)
    e, i, ei, q = parts(fc)
    y = torch.rand(3, 320)
    want = q.gain * (y @ (e - ei @ i).T) / ((y @ i.T * q.alpha.exp()) @ ei.T + 1e-6) + fc.bias
    assert torch.allclose(fc(y), want, atol=1e-5)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("rule", ["bp", "sign_symmetry"])
@pytest.mark.parametrize("divisive", [False, True])
def test_weights_stay_non_negative_under_training(opt, rule, divisive, mlp):
    torch.manual_seed(0)
    model = bc.apply(
        mlp(6, 20, 10, 3),
        {"feedback": {"rule": rule}, "dale": {"architecture": "dann", "dann": {"divisive": divisive}}},
    )
    make = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=1e-3),
        "adam": lambda p: torch.optim.Adam(p, lr=0.05),
    }[opt]
    optimizer = bc.bind(make(model.parameters()), model)
    for _ in range(30):
        optimizer.zero_grad()
        F.cross_entropy(model(torch.rand(16, 6)), torch.randint(0, 3, (16,))).backward()
        optimizer.step()
    negative = 0
    for layer in (model[2], model[4]):
        w_ee, w_ie, w_ei, p = parts(layer)
        tensors = [w_ee, w_ie, w_ei, *([p.gain] if divisive else [])]
        negative += sum(int((t < 0).sum()) for t in tensors)
        assert all(bool(torch.isfinite(t).all()) for t in tensors)
    assert negative == 0 and bc.audit(model, spectra=False).violations == 0


def test_corrected_updates_scale_the_inhibitory_steps(mlp):
    """The factors of the authors' code: W_IE by 1/sqrt(n_e), W_EI by 1/d, alpha by 1/(sqrt(n_e) d)."""
    torch.manual_seed(0)
    model = bc.apply(
        mlp(6, 20, 10, 3), {"dale": {"architecture": "dann", "dann": {"inhibitory_fraction": 0.2, "divisive": True}}}
    )
    layer = model[2]
    w_ee, w_ie, w_ei, p = parts(layer)
    tensors = (w_ee, w_ie, w_ei, p.alpha)
    before = [t.detach().clone() for t in tensors]
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.3), model)
    out = model(torch.rand(5, 6))
    (out * torch.randn(out.shape)).sum().backward()
    grads = [t.grad.clone() for t in tensors]
    assert all(float(g.abs().max()) > 0 for g in grads)
    opt.step()
    n_e, d = 10, 20
    scales = [1.0, 1 / math.sqrt(n_e), 1 / d, 1 / (math.sqrt(n_e) * d)]
    for t, b, g, c in zip(tensors[:3], before, grads, scales, strict=False):
        assert torch.allclose(t.detach(), (b - 0.3 * c * g).clamp(min=0), atol=1e-6)
    assert torch.allclose(p.alpha.detach(), before[3] - 0.3 * scales[3] * grads[3], atol=1e-7)  # not clamped


def test_paper_init_draws_the_interneurons_like_w_ee_and_mean_row_centres_exactly():
    """init: paper (the authors' code): W_IE ~ Exponential(lambda) i.i.d. when n_i > 1 (mean 1/lambda, std = mean),
    W_EI = 1/n_i; init: mean_row: every W_IE row is W_EE's mean row, so W's columns sum to 0 over the outputs."""
    lam = math.sqrt(200 * (2 * math.pi - 1) / (2 * math.pi))
    torch.manual_seed(0)
    paper = bc.apply(
        nn.Sequential(nn.Linear(5, 200), nn.ReLU(), nn.Linear(200, 100)), {"dale": {"architecture": "dann"}}
    )[2]
    w_ee, w_ie, w_ei, _ = parts(paper)
    assert w_ie.shape == (10, 200) and bool((w_ei == 0.1).all())
    w = w_ie.detach()
    assert abs(float(w.mean()) * lam - 1) < 0.1 and abs(float(w.std() / w.mean()) - 1) < 0.15
    assert not torch.allclose(w_ie[0], w_ee.mean(0), atol=1e-3)
    assert float((w_ee - w_ei @ w_ie).sum(0).abs().max()) > 1.0  # centred only in expectation
    torch.manual_seed(0)
    exact = bc.apply(
        nn.Sequential(nn.Linear(5, 200), nn.ReLU(), nn.Linear(200, 100)),
        {"dale": {"architecture": "dann", "dann": {"init": "mean_row"}}},
    )[2]
    w_ee, w_ie, w_ei, _ = parts(exact)
    assert torch.allclose(w_ie, w_ee.mean(0, keepdim=True).expand(10, 200))
    assert float((w_ee - w_ei @ w_ie).sum(0).abs().max()) < 1e-4


def test_feedback_rules_and_refusals(mlp):
    torch.manual_seed(0)
    model = bc.apply(
        mlp(6, 20, 10, 3),
        {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "unit"}}, "dale": {"architecture": "dann"}},
    )
    assert torch.equal(model[2].backward_weight(), torch.sign(model[2].weight.detach()))  # sign of W_EE - W_EI W_IE
    for rule in ("kolen_pollack", "weight_mirror"):
        with pytest.raises(bc.ConfigError, match=rf"feedback.rule: .*dann does not support {rule}"):
            bc.Constraints.from_dict({"feedback": {"rule": rule}, "dale": {"architecture": "dann"}})
    with pytest.raises(bc.ConfigError, match="dale.enforce"):
        bc.Constraints.from_dict({"dale": {"architecture": "dann", "enforce": "abs"}})
    with pytest.raises(bc.ConfigError, match="ungrouped"):
        bc.apply(nn.Sequential(nn.Conv2d(2, 4, 1), nn.Conv2d(4, 4, 1, groups=2)), {"dale": {"architecture": "dann"}})
    plain = bc.remove(model)
    assert [k for k in plain.state_dict() if "parametrizations" in k or "dale" in k] == []


def test_sign_symmetry_centre_cancels_the_mean_error_that_plain_sign_feedback_amplifies():
    """With init: mean_row, W = W_EE - W_EI W_IE starts with centred columns, sign(W) does not (W_EE is
    exponential: ~63% of each column is below its mean); with centre the error sent down is
    (delta - mean_k delta_k) sign(W) s, computed by hand, so a uniform error reaches no input; without it, it comes
    back amplified."""
    torch.manual_seed(5)
    spec = {
        "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "unit", "centre": True}},
        "dale": {"architecture": "dann", "dann": {"init": "mean_row"}},
    }
    model = bc.apply(nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 50)), spec)
    layer = model[2]
    w_ee, w_ie, w_ei, _ = parts(layer)
    w = (w_ee - w_ei @ w_ie).detach()
    assert float(w.sum(0).abs().max()) < 1e-5  # W's columns are centred over the 50 outputs
    column_mean = torch.sign(w).mean(0)
    assert float(column_mean.mean()) < -0.1  # sign(W)'s are not (2/e - 1 = -0.26 expected)
    x = torch.rand(4, 40, requires_grad=True)
    delta = torch.randn(4, 50)
    layer(x).backward(delta)
    assert torch.allclose(x.grad, (delta - delta.mean(1, keepdim=True)) @ torch.sign(w), atol=1e-5)
    x.grad = None
    layer(x).backward(torch.ones(4, 50))
    assert float(x.grad.abs().max()) < 1e-5
    plain = bc.apply(
        nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 50)),
        {**spec, "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "unit"}}},
    )
    x.grad = None
    plain[2](x).backward(torch.ones(4, 50))
    assert float(x.grad.abs().mean()) > 5.0  # ~0.26 * 50 per input


def test_an_optimiser_of_the_interneurons_alone_keeps_them_non_negative(mlp):
    """W_EE out of the optimiser (training the interneurons only): the after-step hooks still run for the layer, so
    W_IE and W_EI are projected onto >= 0 after the (corrected) SGD step, by hand; W_EE does not move."""
    torch.manual_seed(0)
    model = bc.apply(
        mlp(6, 20, 10, 3), {"dale": {"architecture": "dann", "dann": {"inhibitory_fraction": 0.2, "divisive": True}}}
    )
    w_ee, w_ie, w_ei, _ = parts(model[2])
    before = [t.detach().clone() for t in (w_ee, w_ie, w_ei)]
    lr = 50.0
    opt = bc.bind(torch.optim.SGD([w_ie, w_ei], lr=lr), model)
    out = model(torch.rand(5, 6))
    (out * torch.randn(out.shape)).sum().backward()
    grads = [w_ie.grad.clone(), w_ei.grad.clone()]
    opt.step()
    n_e, d = 10, 20
    unprojected = [before[1] - lr / math.sqrt(n_e) * grads[0], before[2] - lr / d * grads[1]]
    assert any(bool((u < 0).any()) for u in unprojected)  # the step alone would break Dale's law
    for t, u in zip((w_ie, w_ei), unprojected, strict=True):
        assert torch.allclose(t.detach(), u.clamp(min=0), atol=1e-6)
    assert torch.equal(w_ee.detach(), before[0])


def test_sign_symmetry_cache_follows_an_in_place_edit_of_the_interneurons(mlp):
    """B = sign(W), W = W_EE - W_EI W_IE: an in-place edit of W_IE (no optimiser step) changes W, so the next
    backward uses the sign of the new W (computed here by explicit matmuls), not the cached one."""
    torch.manual_seed(3)
    model = bc.apply(
        mlp(6, 20, 10, 3),
        {
            "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "unit"}},
            "dale": {"architecture": "dann", "dann": {"inhibitory_fraction": 0.2}},
        },
    )
    layer = model[2]
    w_ee, w_ie, w_ei, _ = parts(layer)
    x = torch.rand(4, 20, requires_grad=True)
    delta = torch.randn(4, 10)
    layer(x).backward(delta)  # builds and caches sign(W)
    assert torch.allclose(x.grad, delta @ torch.sign(w_ee - w_ei @ w_ie).detach(), atol=1e-6)
    with torch.no_grad():
        w_ie.mul_(3.0)  # stronger inhibition: many entries of W flip
    w = w_ee.detach() - w_ei.detach() @ w_ie.detach()
    assert not torch.equal(torch.sign(w), layer.feedback_sign)  # the cache as it stands is stale
    x.grad = None
    layer(x).backward(delta)
    assert torch.allclose(x.grad, delta @ torch.sign(w), atol=1e-6)
    with torch.no_grad():
        w_ei.zero_()  # no inhibition: W = W_EE >= 0
    x.grad = None
    layer(x).backward(delta)
    assert torch.allclose(x.grad, delta @ torch.sign(w_ee.detach()), atol=1e-6)


def test_mean_sign_of_w_columns_under_each_init():
    """Column j of W = W_EE - W_EI W_IE has mean sign 2 exp(-lambda c_j) - 1, c_j = (W_EI W_IE)[:, j]. mean_row:
    c_j is W_EE's column mean (~1/lambda), so every column's mean sign is near 2/e - 1 = -0.26 and none is positive;
    paper with n_i = 6 (64 outputs): c_j is the mean of 6 exponentials, so the columns average
    2 (7/6)^(-6) - 1 = -0.207 and those with lambda c_j < ln 2 are positive: P(Gamma(6, rate 6) < ln 2) = 0.240,
    summed here from the Gamma CDF 1 - sum_{k<6} e^(-6 ln 2) (6 ln 2)^k / k!."""
    d, n_e, n_i = 2000, 64, 6
    rate_x = 6 * math.log(2)
    p_positive = 1 - sum(math.exp(-rate_x) * rate_x**k / math.factorial(k) for k in range(n_i))
    expected = {"paper": (2 * (1 + 1 / n_i) ** (-n_i) - 1, p_positive), "mean_row": (2 / math.e - 1, 0.0)}
    for init, (mean_sign, positive) in expected.items():
        torch.manual_seed(0)
        layer = bc.apply(
            nn.Sequential(nn.Linear(5, d), nn.ReLU(), nn.Linear(d, n_e)),
            {"dale": {"architecture": "dann", "dann": {"init": init}}},
        )[2]
        assert parts(layer)[1].shape[0] == n_i
        column_sign = torch.sign(layer.weight.detach()).mean(0)  # (d,): each column's mean sign
        assert abs(float(column_sign.mean()) - mean_sign) < 0.02, init
        assert abs(float((column_sign > 0).double().mean()) - positive) < 0.04, init
