"""Rules: B for the current W, fixed and per-batch random magnitudes, reproducible random feedback."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.feedback.rules.registry import init_std


def train_steps(model, steps=4, lr=0.5):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(8, 10)).pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("magnitude", ["init_std", "unit", "weight_rms"])
def test_sign_symmetry_follows_current_weight(magnitude):
    model = nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 3))
    bc.apply(model, {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": magnitude}}})
    before = model[0].backward_weight().clone()
    train_steps(model)
    W = model[0].weight.detach()
    scale = {"init_std": 1 / math.sqrt(3 * 10), "unit": 1.0, "weight_rms": float(W.pow(2).mean().sqrt())}[magnitude]
    assert torch.allclose(model[0].backward_weight(), torch.sign(W) * scale, rtol=1e-6, atol=0)
    assert not torch.equal(before, model[0].backward_weight()) or magnitude != "weight_rms"
    assert init_std(W) == pytest.approx(1 / math.sqrt(30))


def test_random_fixed_keeps_magnitudes_random_batch_redraws():
    fixed = nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 3))
    batch = nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 3))
    bc.apply(fixed, {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "random_fixed"}}})
    bc.apply(batch, {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "random_batch"}}})
    mags_fixed, mags_batch = [], []
    for _ in range(3):
        train_steps(fixed, steps=1)
        train_steps(batch, steps=1)
        mags_fixed.append(fixed[0].backward_weight().abs().clone())
        mags_batch.append(batch[0].backward_weight().abs().clone())
        # the sign always follows the current W
        assert torch.equal(torch.sign(batch[0].backward_weight()), torch.sign(batch[0].weight.detach()))
    assert all(torch.equal(mags_fixed[0], m) for m in mags_fixed[1:])
    assert not torch.equal(mags_batch[0], mags_batch[1]) and not torch.equal(mags_batch[1], mags_batch[2])
    assert int(batch[0].feedback_step) == 3


@pytest.mark.parametrize("magnitude", ["random_fixed", "random_batch"])
def test_random_magnitudes_follow_the_paper_distribution_by_hand(magnitude):
    """frSF / brSF on a conv: M = |R|, R ~ N(0, 2 / (k_h k_w C_out)) drawn from the layer's seeded generator (brSF:
    seed + 7919 * feedback_step), so E M^2 = 2 / (k_h k_w C_out); a linear layer: M ~ U(0, 1/sqrt(fan_in));
    ``random_init: uniform`` keeps U(0, 1/sqrt(fan_in)) for convs too."""
    model = nn.Sequential(nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Linear(128, 10))
    bc.apply(model, {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": magnitude}}})
    conv, lin = model[0], model[3]
    if magnitude == "random_batch":
        model(torch.randn(1, 64, 3, 3)).sum().backward()  # one training forward: feedback_step 1
    seeds = [
        (layer.rule.layer_seed + (7919 * int(layer.feedback_step) if magnitude == "random_batch" else 0)) % 2**62
        for layer in (conv, lin)
    ]
    std = math.sqrt(2 / (3 * 3 * 128))
    R = torch.empty(conv.weight.shape).normal_(0.0, std, generator=torch.Generator().manual_seed(seeds[0]))
    assert torch.equal(conv.feedback_weight, R.abs())
    assert float(conv.feedback_weight.pow(2).mean().sqrt()) == pytest.approx(std, rel=0.01)
    bound = 1 / math.sqrt(128)
    R = torch.empty(lin.weight.shape).uniform_(-bound, bound, generator=torch.Generator().manual_seed(seeds[1]))
    assert torch.equal(lin.feedback_weight, R.abs())
    old = bc.apply(
        nn.Sequential(nn.Conv2d(64, 128, 3)),
        {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": magnitude, "random_init": "uniform"}}},
    )[0]
    bound = 1 / math.sqrt(64 * 9)
    assert old.feedback_weight.max() <= bound and float(old.feedback_weight.mean()) == pytest.approx(
        bound / 2, rel=0.01
    )
    with pytest.raises(bc.ConfigError, match="random_init applies to magnitude random_fixed or random_batch"):
        bc.apply(
            nn.Sequential(nn.Linear(3, 2)),
            {"feedback": {"rule": "sign_symmetry", "options": {"random_init": "uniform"}}},
        )


def test_fa_is_fixed_reproducible_and_from_init_distribution():
    def make(seed):
        m = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 10))
        return bc.apply(m, {"feedback": {"rule": "fa", "seed": seed}})

    a, b, c = make(0), make(0), make(1)
    B = a[0].feedback_weight
    assert torch.equal(B, b[0].feedback_weight) and not torch.equal(B, c[0].feedback_weight)
    assert not torch.equal(a[0].feedback_weight[:10, :10], a[2].feedback_weight[:10, :10])
    bound = 1 / math.sqrt(400)
    assert B.abs().max() <= bound and B.abs().max() > 0.95 * bound
    assert float(B.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    before = B.clone()
    train_steps(nn.Sequential(nn.Linear(10, 400), a))
    assert torch.equal(before, a[0].feedback_weight)
    assert "0.feedback_weight" in a.state_dict()


def test_unknown_rule_and_option_errors():
    with pytest.raises(bc.ConfigError, match="unknown feedback rule.*did you mean 'sign_symmetry'"):
        bc.make_rule("sign_symetry")
    with pytest.raises(bc.ConfigError, match="does not take option 'magnitude'.*no options"):
        bc.make_rule("bp", {"magnitude": "unit"})
    with pytest.raises(bc.ConfigError, match="does not take option 'magnitude'.*expected init"):
        bc.make_rule("fa", {"magnitude": "unit"})
    with pytest.raises(bc.ConfigError, match="did you mean 'magnitude'"):
        bc.make_rule("sign_symmetry", {"magnitud": "unit"})
    with pytest.raises(bc.ConfigError, match="magnitude"):
        bc.make_rule("sign_symmetry", {"magnitude": "huge"})


def test_registry_makes_a_new_rule_one_class():
    from biocircuits.feedback.rules import RULES, FeedbackRule, register_rule

    @register_rule
    class Zero(FeedbackRule):
        name = "zero_test_rule"

        def feedback(self, layer, weight, advance):
            return torch.zeros_like(weight)

    try:
        layer = bc.nn.FeedbackLinear(3, 2, rule="zero_test_rule")
        x = torch.randn(4, 3, requires_grad=True)
        layer(x).sum().backward()
        assert torch.equal(x.grad, torch.zeros_like(x))
        assert layer.weight.grad.abs().sum() > 0
    finally:
        RULES.unregister("zero_test_rule")


def test_random_feedback_never_replays_the_weight_init_stream():
    """With torch.manual_seed(s) and feedback seed s, a standalone layer's B must not equal its W."""
    for s in (0, 1, 7):
        torch.manual_seed(s)
        layer = bc.nn.FeedbackLinear(20, 8, rule="fa", seed=s)
        assert not torch.allclose(layer.feedback_weight, layer.weight.detach())
        cos = nn.functional.cosine_similarity(layer.feedback_weight.flatten(), layer.weight.detach().flatten(), 0)
        assert abs(float(cos)) < 0.5


@pytest.mark.parametrize("magnitude", ["init_std", "weight_rms", "random_fixed"])
@pytest.mark.parametrize("batch", [1, 64])  # B has more entries than the input (batch 1) or fewer (batch 64)
def test_sign_symmetry_input_gradient_is_scaled_sign_times_error(magnitude, batch):
    """grad_x = delta (s sign(W) [* |R|]) by hand, whichever of B or grad_x the layer applies s to; B follows W
    across an in-place weight change (its cache is keyed on the weight's version)."""
    torch.manual_seed(1)
    layer = bc.nn.FeedbackLinear(12, 9, rule="sign_symmetry", options={"magnitude": magnitude})
    for _ in range(2):
        x = torch.randn(batch, 12, requires_grad=True)
        delta = torch.randn(batch, 9)
        layer(x).backward(delta)
        W = layer.weight.detach()
        s = {"init_std": 1 / math.sqrt(3 * 12), "weight_rms": float(W.pow(2).mean().sqrt())}.get(magnitude, 1.0)
        B = torch.sign(W) * s * (layer.feedback_weight if magnitude == "random_fixed" else 1.0)
        assert torch.allclose(x.grad, delta @ B, rtol=1e-6, atol=1e-7)
        assert torch.allclose(layer.weight.grad, delta.t() @ x.detach(), rtol=1e-6, atol=1e-7)
        with torch.no_grad():
            layer.weight.mul_(-1.0)  # every sign flips: a stale B would fail the next round
        layer.weight.grad = None


@pytest.mark.parametrize("batch", [1, 16])
def test_sign_symmetry_conv_input_gradient_by_hand(batch):
    torch.manual_seed(2)
    conv = bc.nn.FeedbackConv2d(3, 5, 3, padding=1, rule="sign_symmetry")
    x = torch.randn(batch, 3, 6, 6, requires_grad=True)
    delta = torch.randn(batch, 5, 6, 6)
    conv(x).backward(delta)
    B = torch.sign(conv.weight.detach()) * math.sqrt(2 / (9 * 5))  # the paper scale, sqrt(2 / (k_h k_w C_out))
    assert torch.allclose(x.grad, torch.nn.functional.conv_transpose2d(delta, B, padding=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("magnitude", ["unit", "random_fixed", "random_batch"])
def test_sign_symmetry_centre_subtracts_the_mean_error_by_hand(magnitude):
    """centre: grad_x = delta (S - 1 mean_k S_k) = (delta - mean_k delta_k) S, S = sign(W) [* |R|]; B follows W."""
    torch.manual_seed(3)
    layer = bc.nn.FeedbackLinear(7, 6, rule="sign_symmetry", options={"magnitude": magnitude, "centre": True})
    for _ in range(2):
        x = torch.randn(5, 7, requires_grad=True)
        delta = torch.randn(5, 6)
        layer(x).backward(delta)
        S = torch.sign(layer.weight.detach()) * (layer.feedback_weight if magnitude != "unit" else 1.0)
        centred = torch.stack([S[:, j] - S[:, j].sum() / 6 for j in range(7)], 1)  # column by column
        assert torch.allclose(x.grad, delta @ centred, atol=1e-6)
        assert torch.allclose(x.grad, (delta - delta.mean(1, keepdim=True)) @ S, atol=1e-6)
        assert not torch.allclose(x.grad, delta @ S, atol=1e-3)  # the centring did something
        assert torch.allclose(layer.weight.grad, delta.t() @ x.detach(), atol=1e-6)
        with torch.no_grad():
            layer.weight.mul_(-1.0)
        layer.weight.grad = None


def test_sign_symmetry_centre_conv_by_hand():
    """Conv: each (input channel, tap) column is centred over the output channels; a uniform error over the
    output channels at a position reaches no input."""
    torch.manual_seed(4)
    conv = bc.nn.FeedbackConv2d(3, 5, 3, padding=1, rule="sign_symmetry", options={"centre": True})
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    delta = torch.randn(2, 5, 6, 6)
    conv(x).backward(delta)
    S = torch.sign(conv.weight.detach())
    B = (S - S.sum(0, keepdim=True) / 5) * math.sqrt(2 / (9 * 5))
    assert torch.allclose(x.grad, F.conv_transpose2d(delta, B, padding=1), rtol=1e-5, atol=1e-6)
    x.grad = None
    conv(x).backward(torch.randn(2, 1, 6, 6).expand(2, 5, 6, 6))
    assert float(x.grad.abs().max()) < 1e-5


def test_sign_symmetry_centre_grouped_conv_centres_within_each_group_by_hand():
    """groups=2, 6 outputs: output channels 0-2 read input channels 0-1, 3-5 read 2-3; each kernel entry is centred
    over its own group's 3 outputs, so an error uniform within each group reaches no input. Depthwise is refused."""
    torch.manual_seed(6)
    conv = bc.nn.FeedbackConv2d(
        4, 6, 3, padding=1, groups=2, rule="sign_symmetry", options={"magnitude": "unit", "centre": True}
    )
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    delta = torch.randn(2, 6, 5, 5)
    conv(x).backward(delta)
    S = torch.sign(conv.weight.detach())
    B = torch.cat([S[0:3] - S[0:3].sum(0, keepdim=True) / 3, S[3:6] - S[3:6].sum(0, keepdim=True) / 3])
    assert torch.allclose(x.grad, F.conv_transpose2d(delta, B, padding=1, groups=2), atol=1e-5)
    x.grad = None
    per_group = torch.randn(2, 2, 5, 5).repeat_interleave(3, dim=1)  # one error per group and position
    conv(x).backward(per_group)
    assert float(x.grad.abs().max()) < 1e-5
    with pytest.raises(bc.ConfigError, match="one output per group|more than one output per group"):
        bc.nn.FeedbackConv2d(4, 4, 3, groups=4, rule="sign_symmetry", options={"centre": True})


def test_sign_symmetry_centre_is_refused_under_column_dale():
    with pytest.raises(bc.ConfigError, match=r"feedback.options.centre: .*column-sign Dale"):
        bc.Constraints.from_dict({"feedback": {"rule": "sign_symmetry", "options": {"centre": True}}, "dale": {}})
    with pytest.raises(bc.ConfigError, match=r"feedback.overrides.fc.options.centre"):
        bc.Constraints.from_dict(
            {"feedback": {"overrides": {"fc": {"rule": "sign_symmetry", "options": {"centre": True}}}}, "dale": {}}
        )
    bc.Constraints.from_dict(
        {"feedback": {"rule": "sign_symmetry", "options": {"centre": True}}, "dale": {"architecture": "dann"}}
    )
    bc.Constraints.from_dict(
        {"feedback": {"rule": "sign_symmetry", "options": {"centre": True}}, "dale": {"enabled": False}}
    )
    bc.Constraints.from_dict(
        {
            "feedback": {"rule": "sign_symmetry", "options": {"centre": "false"}, "overrides": {"fc": "sign_symmetry"}},
            "dale": {},
        }
    )
