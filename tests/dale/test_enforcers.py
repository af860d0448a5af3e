"""Dale enforcers after one optimiser step, against the formulas computed by hand, for block (sign runs: strided
clamps) and random (mask) assignments, linear and conv layers."""

import pytest
import torch
from torch import nn

import biocircuits as bc


@pytest.mark.parametrize("assignment", ["block", "random"])
@pytest.mark.parametrize("enforce", ["project", "exp_gradient"])
def test_enforcer_step_equals_the_formula(assignment, enforce):
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)),
        {"dale": {"enforce": enforce, "assignment": assignment, "exempt": [], "init": "keep"}},
    )
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.5), model)
    before = {i: model[i].weight.detach().clone() for i in (0, 3)}
    model(torch.randn(4, 3, 6, 6)).pow(2).sum().backward()
    grads = {i: model[i].weight.grad.clone() for i in (0, 3)}
    opt.step()
    for i in (0, 3):
        s = model[i].dale_sign.view(1, -1, *([1] * (before[i].dim() - 2)))
        w_sgd = before[i] - 0.5 * grads[i]
        if enforce == "project":
            expected = s * torch.clamp(s * w_sgd, min=0)
        else:  # W_old * exp(s dW)
            expected = before[i] * torch.exp(s * (w_sgd - before[i]))
        assert torch.allclose(model[i].weight.detach(), expected, rtol=1e-6, atol=1e-7)
        assert (model[i].weight * s >= 0).all()


@pytest.mark.parametrize("enforce", ["abs", "softplus"])
def test_reparametrised_weight_and_latent_gradient_equal_autograd_bit_for_bit(enforce):
    """W = s f(V) and dL/dV = f'(V) s dL/dW, one autograd node (V's accumulator right behind W), equal bit for bit
    to autograd through s * f(V) written out by hand (softplus's W: log1p(e^V) in float64, rounded once); V spans
    softplus's linear branch (V > 20) and V = 0."""
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)),
        {"dale": {"enforce": enforce, "exempt": [], "init": "keep"}},
    )
    x = torch.randn(4, 3, 6, 6)
    for i in (0, 3):
        with torch.no_grad():
            latent = model[i].parametrizations.weight.original
            latent.view(-1)[:3] = torch.tensor([25.0, 0.0, -30.0])
    model(x).pow(2).sum().backward()
    for i in (0, 3):
        latent = model[i].parametrizations.weight.original
        w = model[i].weight
        assert type(w.grad_fn.next_functions[0][0]).__name__ == "AccumulateGrad"  # one node: W straight from V
        v = latent.detach().clone().requires_grad_()
        s = model[i].dale_sign.view(1, -1, *([1] * (w.dim() - 2)))
        by_hand = s * (v.abs() if enforce == "abs" else torch.nn.functional.softplus(v))
        if enforce == "abs":
            assert torch.equal(w.detach(), by_hand.detach())
        else:  # softplus in float64, rounded once (#27): not float32 F.softplus's last bit
            assert torch.equal(w.detach(), s * torch.log1p(torch.exp(v.detach().double())).float())
        upstream = torch.randn_like(w)
        (g,) = torch.autograd.grad(by_hand, v, upstream)
        (mine,) = torch.autograd.grad(model[i].weight, latent, upstream)
        assert torch.equal(mine, g)
        assert latent.grad is not None and torch.isfinite(latent.grad).all()
