"""``dale.norm_gamma``: BatchNorm gamma kept >= 0 so the BN-folded weights obey Dale, against hand computations."""

import pytest
import torch
from torch import nn

import biocircuits as bc
from biocircuits.dale.norms import NonnegativeGamma, effective_weight
from biocircuits.errors import ConfigError


def conv_bn(norm_gamma: str) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1, bias=False), nn.BatchNorm2d(2)
    )
    return bc.apply(model, {"dale": {"exempt": [], "excitatory_fraction": 0.5, "norm_gamma": norm_gamma}})


def test_gamma_step_is_sgd_then_clamped_at_zero():
    model = conv_bn("nonnegative")
    bn = model[1]
    assert isinstance(bn.attachments.dale, NonnegativeGamma)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 0.25, 0.5]))
    opt = bc.bind(torch.optim.SGD([bn.weight], lr=1.0), model)
    bn.weight.grad = torch.tensor([0.5, 1.0, -0.5])
    opt.step()
    # by hand: gamma - lr * grad = (0.5, -0.75, 1.0); the negative one is projected to 0
    assert torch.equal(bn.weight.detach(), torch.tensor([0.5, 0.0, 1.0]))


def test_attach_clamps_a_negative_gamma_and_free_leaves_it():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([-1.0, 2.0, -0.0]))
    model = bc.apply(nn.Sequential(nn.Linear(4, 3), bn), {"dale": {"exempt": [], "norm_gamma": "nonnegative"}})
    assert torch.equal(model[1].weight.detach(), torch.tensor([0.0, 2.0, 0.0]))
    free = conv_bn("free")
    assert getattr(free[1], "attachments", None) is None


def folded_violations(model: nn.Sequential) -> int:
    """Weights of the BN-folded convs whose sign breaks their presynaptic unit's type (counted here, by hand)."""
    bad = 0
    for conv, bn in ((model[0], model[1]), (model[3], model[4])):
        w_eff = effective_weight(conv.weight.detach(), bn)
        bad += int((w_eff * conv.dale_sign.view(1, -1, 1, 1) < 0).sum())
    return bad


@pytest.mark.parametrize("norm_gamma,violations", [("free", 3), ("nonnegative", 0)])
def test_a_negative_gamma_breaks_the_folded_weights_unless_kept_nonnegative(norm_gamma, violations):
    model = conv_bn(norm_gamma)
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=1.0), model)
    conv = model[3]
    with torch.no_grad():  # W of the second conv: 2 outputs x 3 inputs, W_ij = s_j (every weight obeys Dale)
        conv.weight.copy_(conv.dale_sign.view(1, -1, 1, 1) * torch.ones(2, 3, 1, 1))
    model.zero_grad()
    model[4].weight.grad = torch.tensor([2.0, 0.0])  # gamma_0: 1 - 1 * 2 = -1 after the step
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    opt.step()
    gamma0 = float(model[4].weight.detach()[0])
    assert gamma0 == (-1.0 if norm_gamma == "free" else 0.0)
    # output 0's three incoming synapses all flip when gamma_0 < 0; W_eff = gamma/sqrt(1 + eps) * W (running var 1)
    expected = gamma0 / (1.0 + model[4].eps) ** 0.5 * conv.weight.detach()[0, :, 0, 0]
    assert torch.allclose(effective_weight(conv.weight.detach(), model[4])[0, :, 0, 0], expected)
    assert folded_violations(model) == violations


def test_remove_detaches_the_gamma_clamp():
    model = conv_bn("nonnegative")
    bc.remove(model)
    assert getattr(model[1], "attachments", None) is None


def test_unknown_norm_gamma_is_a_config_error():
    with pytest.raises(ConfigError, match="nonnegative"):
        bc.apply(nn.Linear(2, 2), {"dale": {"norm_gamma": "positive"}})


class CatBN(nn.Module):
    """stem -> [a, b] concatenated -> BatchNorm(5) -> c: the norm reads a's units (channels 0-2) and b's (3-4)
    after a concatenation, not directly after a weight layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 1)
        self.a = nn.Conv2d(4, 3, 1)
        self.b = nn.Conv2d(4, 2, 1)
        self.bn = nn.BatchNorm2d(5)
        self.c = nn.Conv2d(5, 2, 1)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.c(torch.relu(self.bn(torch.cat([torch.relu(self.a(h)), torch.relu(self.b(h))], 1))))


def test_a_negative_gamma_after_a_concatenation_is_an_effective_violation():
    """bn.weight[3] < 0 scales b's output unit 0: its non-zero incoming synapses, s_j W_0j > 0, act with the other
    sign. b's row 0 is set to s (4 synapses) with one zeroed: 3 effective violations, b's row only."""
    torch.manual_seed(0)
    model = bc.apply(CatBN(), {"dale": {"excitatory_fraction": 0.5}})
    with torch.no_grad():
        model.b.weight.copy_(model.b.dale_sign.view(1, -1, 1, 1).expand(2, 4, 1, 1))
        model.b.weight[0, 1] = 0.0
        model.bn.weight[3] = -0.5
    report = bc.audit(model, spectra=False)
    assert report.violations == 0
    assert {r.name: r.effective_violations for r in report.layers if r.constrained} == {"a": 0, "b": 3, "c": 0}
    assert report.effective_violations == 3
    assert any("b: 1 units have a negative gain in bn" in leak for leak in report.leaks)
    with torch.no_grad():
        model.bn.weight[3] = 0.5
    assert bc.audit(model, spectra=False).effective_violations == 0


def test_under_dann_a_negative_gamma_flips_the_synapses_onto_its_unit():
    """DANN layer fc (20 -> 10, n_i = 1) followed by a BatchNorm: gamma_2 < 0 turns the E->E synapses W_EE[2, :]
    inhibitory and the I->E synapse W_EI[2, :] excitatory: every positive entry of those rows counts."""
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 10), nn.BatchNorm1d(10)),
        {"dale": {"architecture": "dann"}},
    )
    fc = model[2]
    w_ee, p = fc.parametrizations.weight.original, fc.parametrizations.weight[0]
    assert bc.audit(model, spectra=False).effective_violations == 0
    with torch.no_grad():
        w_ee[2, :3] = 0.0
        model[3].weight[2] = -1.0
    expected = int((w_ee[2] > 0).sum()) + int((p.weight_ei[2] > 0).sum())
    assert expected == 17 + 1
    report = bc.audit(model, spectra=False)
    assert report.violations == 0
    assert [r.effective_violations for r in report.layers if r.name == "2"] == [expected]
    assert report.effective_violations == expected


def test_layernorm_centring_is_reported_as_not_guaranteed():
    """12 -> 10 linear + LayerNorm(10), gamma = 1 >= 0, W obeying Dale: the effective weights are the Jacobian
    (1 / sigma)(I - 1 1^T / 10 - z_hat z_hat^T / 10) W (by hand, checked against autograd), and some break the
    law; the audit counts the 10 x 12 weights onto the centred units as not guaranteed, not as 0 or as violations."""
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 10), nn.LayerNorm(10)),
        {"dale": {"excitatory_fraction": 0.5}},
    )
    fc, norm = model[2], model[3]
    w, s = fc.weight.detach(), fc.dale_sign
    assert int(((w * s) < 0).sum()) == 0
    x = torch.rand(12)
    z = w @ x + fc.bias.detach()
    sigma = torch.sqrt(z.var(unbiased=False) + norm.eps)
    z_hat = (z - z.mean()) / sigma
    jac = (torch.eye(10) - torch.ones(10, 10) / 10 - torch.outer(z_hat, z_hat) / 10) @ w / sigma
    auto = torch.autograd.functional.jacobian(lambda v: norm(fc(v)), x)
    assert torch.allclose(jac, auto, atol=1e-5)
    assert int(((jac * s) < 0).sum()) > 0  # wrong-sign effective weights with gamma >= 0
    report = bc.audit(model, spectra=False)
    assert report.violations == 0 and report.effective_violations == 0
    assert [r.not_guaranteed for r in report.layers if r.name == "2"] == [120] and report.not_guaranteed == 120
    assert any("2: 120 synapses onto units centred by 3" in leak for leak in report.leaks)
