"""Dale's law: signs per presynaptic unit, enforcement under any optimiser, balanced init, audit, feedback."""

import math

import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import biocircuits as bc
from biocircuits.dale import sign_mask

from ..builders import build_mlp


def net(kind, width, groups=1):
    if kind == "mlp":
        return build_mlp(6, width, width, 3)
    return nn.Sequential(
        nn.Conv2d(3, width, 3),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, groups=groups),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(width * 4, 3),
    )


OPTIMISERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam(p, lr=0.04, weight_decay=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.04),
}


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["mlp", "conv"]),
    width=st.integers(2, 9),
    frac=st.floats(0.0, 1.0),
    assignment=st.sampled_from(["block", "random"]),
    enforce=st.sampled_from(["project", "abs", "softplus", "exp_gradient"]),
    opt=st.sampled_from(sorted(OPTIMISERS)),
    rule=st.sampled_from(["bp", "fa", "sign_symmetry"]),
    bf16=st.booleans(),
    grouped=st.booleans(),
)
def test_no_violations_after_many_steps(kind, width, frac, assignment, enforce, opt, rule, bf16, grouped):
    torch.manual_seed(0)
    groups = 2 if grouped and kind == "conv" and width % 2 == 0 else 1
    model = bc.apply(
        net(kind, width, groups),
        {
            "feedback": {"rule": rule},
            "dale": {"excitatory_fraction": frac, "assignment": assignment, "enforce": enforce},
        },
    )
    optimizer = bc.bind(OPTIMISERS[opt](model.parameters()), model)
    if enforce == "exp_gradient":  # multiplicative steps exp(dW): large additive steps would overflow
        for group in optimizer.param_groups:
            group["lr"] *= 0.1
    shape = (8, 6) if kind == "mlp" else (8, 3, 6, 6)
    for _ in range(15):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(torch.randn(shape).abs())
        (out.float() * torch.randn(out.shape)).sum().backward()  # random gradients
        optimizer.step()
    report = bc.audit(model)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert report.violations == 0
    assert sum(r.constrained for r in report.layers) == 2


def test_signs_block_and_random_and_conversion():
    model = bc.apply(net("mlp", 10), {"dale": {"excitatory_fraction": 0.7, "init": "keep"}})
    assert torch.equal(model[2].dale_sign, torch.tensor([1.0] * 7 + [-1.0] * 3))
    assert not hasattr(model[0], "dale_sign")  # fed by the raw input: exempt
    W = model[2].weight
    assert bool(((W * model[2].dale_sign.view(1, -1)) >= 0).all())
    rnd = bc.apply(net("mlp", 10), {"dale": {"assignment": "random", "seed": 3}})
    block = torch.tensor([1.0] * 8 + [-1.0] * 2)
    assert int((rnd[2].dale_sign > 0).sum()) == 8 and not torch.equal(rnd[2].dale_sign, block)


def test_grouped_conv_mask():
    conv = nn.Conv2d(4, 6, 1, groups=2)
    sign = torch.tensor([1.0, -1.0, -1.0, 1.0])
    mask = sign_mask(conv, sign)
    assert mask.shape == (6, 2, 1, 1)
    # output channels 0-2 read inputs 0,1; 3-5 read inputs 2,3
    assert mask[:3, :, 0, 0].tolist() == [[1, -1]] * 3 and mask[3:, :, 0, 0].tolist() == [[-1, 1]] * 3


def test_balanced_init_zero_mean_preactivation():
    """Mean pre-activation of each unit ~0 for non-negative random inputs: |mean| < 0.05 * its std over inputs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 200, bias=False), nn.ReLU(), nn.Linear(200, 100, bias=False))
    bc.apply(model, {"dale": {"excitatory_fraction": 0.8}})
    x = torch.rand(20000, 200)  # non-negative, equal means
    pre = x @ model[2].weight.detach().T
    assert (pre.mean(0).abs() < 0.05 * pre.std(0)).all()
    keep = bc.apply(
        nn.Sequential(nn.Linear(5, 200, bias=False), nn.ReLU(), nn.Linear(200, 100, bias=False)),
        {"dale": {"init": "keep"}},
    )
    pre_keep = x @ keep[2].weight.detach().T
    assert (pre_keep.mean(0) > 0.5 * pre_keep.std(0)).float().mean() > 0.9  # E-dominated without balancing


def test_audit_resnet18_identity_leak_and_signed_residual():
    plain = bc.apply(torchvision.models.resnet18(num_classes=4), {"dale": {}})  # residual: identity (the default)
    rep = bc.audit(plain, spectra=False)  # the leaks only (the spectra of resnet18's layers take tens of seconds)
    assert rep.violations == 0
    leaks = [leak for leak in rep.leaks if "identity shortcut" in leak]
    assert len(leaks) == 5  # layer1.0, layer1.1, layer2.1, layer3.1, layer4.1
    assert any("conv1: exempt" in leak for leak in rep.leaks)
    signed = bc.apply(torchvision.models.resnet18(num_classes=4), {"dale": {"residual": "signed"}})
    assert not [leak for leak in bc.audit(signed, spectra=False).leaks if "identity shortcut" in leak]
    x = torch.rand(2, 3, 32, 32)
    out = signed(x)
    assert out.shape == (2, 4)
    blk = signed.layer1[0]
    assert torch.equal(blk.residual_sign, blk.conv1.dale_sign)


def test_audit_sample_reports_negative_inputs_and_spectrum():
    model = bc.apply(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)), {"dale": {}})
    rep = bc.audit(model, sample=torch.randn(16, 4))
    assert any("input goes negative" in leak for leak in rep.leaks)
    row = [r for r in rep.layers if r.constrained][0]
    assert row.excitatory == 6 and row.inhibitory == 2 and 0 < row.svd_entropy <= 1 and row.sv_spread >= 1
    assert bc.audit(model, sample=torch.randn(16, 4)).to_dict()["violations"] == 0


def test_dale_sign_symmetry_collapses_to_rank_one_random_keeps_rank():
    def feedback(preset):
        torch.manual_seed(0)
        model = bc.apply(nn.Sequential(nn.Linear(5, 30), nn.ReLU(), nn.Linear(30, 20)), preset)
        opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(8, 5)).pow(2).mean().backward()
            opt.step()
        return model[2]

    ss = feedback("constraints/dale_sign_symmetry.yaml")
    B = ss.backward_weight()
    W = ss.weight.detach()
    # B no longer follows W: wherever W is non-zero, B is the paper scale 1/sqrt(fan_in) times the presynaptic
    # type, i.e. the rank-one broadcast s * 1 s_E/I^T (masked where projection zeroed W)
    scale = 1 / math.sqrt(30)
    assert torch.allclose(B, scale * (W != 0) * ss.dale_sign.view(1, -1), rtol=1e-6, atol=0)
    rs = feedback("constraints/dale_random_sign_symmetry.yaml")
    assert torch.linalg.matrix_rank(rs.backward_weight()) == 20


def test_dale_with_init_std_rank_one_exactly_when_no_zero_weights():
    model = bc.apply(
        nn.Sequential(nn.Linear(5, 30), nn.ReLU(), nn.Linear(30, 20)), "constraints/dale_sign_symmetry.yaml"
    )
    assert torch.linalg.matrix_rank(model[2].backward_weight()) == 1


def test_bad_dale_spec():
    with pytest.raises(bc.ConfigError, match="excitatory_fraction"):
        bc.Constraints.from_dict({"dale": {"excitatory_fraction": 1.5}})
    with pytest.raises(bc.ConfigError, match="matches no weight layer"):
        bc.apply(net("mlp", 4), {"dale": {"exempt": ["conv9"]}})
