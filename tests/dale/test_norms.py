"""``dale.norm_gamma``: BatchNorm gamma kept >= 0 so the BN-folded weights obey Dale, against hand computations."""

import pytest
import torch
from torch import nn

import biocircuits as bc
from biocircuits.dale.norms import NonnegativeGamma, effective_weight
from biocircuits.errors import ConfigError


def conv_bn(norm_gamma: str) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Conv2d(3, 2, 1, bias=False), nn.BatchNorm2d(2))
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
