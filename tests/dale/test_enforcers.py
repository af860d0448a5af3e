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
