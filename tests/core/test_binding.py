"""``bc.bind``: each optimiser runs the hooks of the layers whose weights it updates, once per step."""

import torch
from torch import nn

import biocircuits as bc


def test_two_optimisers_over_one_model_run_each_layers_hooks_once(mlp):
    model = bc.apply(
        mlp(4, 6, 3, act=nn.Tanh, seed=0), {"feedback": {"rule": "weight_mirror"}, "phases": {"error_delay": 1}}
    )
    first = bc.bind(torch.optim.SGD([model[0].weight, model[0].bias], lr=0.1), model)
    second = bc.bind(torch.optim.SGD([model[2].weight, model[2].bias], lr=0.1), model)
    grads = []
    for t in range(3):
        first.zero_grad()
        second.zero_grad()
        model(torch.full((2, 4), float(t + 1))).sum().backward()
        grads.append(model[2].weight.grad.clone())
        first.step()
        second.step()
        assert int(model[0].delay_count) == int(model[2].delay_count) == t + 1
        assert int(model[0].mirror_count) == int(model[2].mirror_count) == t + 1
        # error_delay 1: the gradient applied at step t is the one of step t - 1 (zero at the first step)
        assert torch.equal(model[2].weight.grad, grads[t - 1] if t else torch.zeros_like(grads[0]))


def test_sign_symmetry_follows_w_under_a_fused_optimiser(mlp):
    model = bc.apply(
        mlp(4, 6, 3, act=nn.Tanh, seed=0), {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "unit"}}}
    )
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=10.0, fused=True), model)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
        assert torch.equal(model[2].backward_weight(), torch.sign(model[2].weight.detach()))


def test_remove_unbinds_so_the_optimiser_can_be_bound_again(mlp):
    model = bc.apply(mlp(4, 6, 3, act=nn.Tanh, seed=0), {"feedback": {"rule": "fa"}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    bc.remove(model)
    bc.bind(opt, bc.apply(model, {"feedback": {"rule": "sign_symmetry"}}))
