"""``dale.population_norm: divisive``: each constrained layer's input divided by its E and I populations' mean
activity, against hand computations; the rank-one mean part of a balanced column-sign W then drives nothing."""

import pytest
import torch
from torch import nn

import biocircuits as bc
from biocircuits.dale.population_norm import PopulationNorm, divide_by_population_mean
from biocircuits.errors import ConfigError


def test_linear_input_divided_by_each_populations_mean_by_hand():
    torch.manual_seed(0)
    layer = nn.Linear(4, 2, bias=False)
    model = bc.apply(nn.Sequential(layer), {"dale": {"exempt": [], "excitatory_fraction": 0.5,
                                                     "population_norm": "divisive"}})
    dale = layer.attachments.of("dale")   # beside the enforcer, which stays the layer's one Dale attachment
    assert isinstance(dale[1], PopulationNorm) and layer.attachments.dale is dale[0]
    x = torch.tensor([[1.0, 3.0, 2.0, 6.0]])  # E = units 0, 1 (mean 2); I = units 2, 3 (mean 4)
    eps = 1e-3
    x_norm = torch.tensor([[1 / (2 + eps), 3 / (2 + eps), 2 / (4 + eps), 6 / (4 + eps)]])
    assert torch.allclose(model(x), x_norm @ layer.weight.detach().T)


def test_conv_input_divided_per_sample_and_position():
    sign = torch.tensor([1.0, 1.0, -1.0])
    x = torch.tensor([[[[2.0, 0.0]], [[4.0, 2.0]], [[5.0, 1.0]]]])  # (1, 3 channels, 1, 2 positions)
    got = divide_by_population_mean(x, sign, 0.0, 1)
    # position 0: a_E = (2 + 4) / 2 = 3, a_I = 5; position 1: a_E = 1, a_I = 1
    want = torch.tensor([[[[2 / 3, 0.0]], [[4 / 3, 2.0]], [[1.0, 1.0]]]])
    assert torch.allclose(got, want)


def test_balanced_column_sign_layer_ignores_population_wide_activity():
    """With balanced rows and E/I column means, inputs that differ only in each population's overall level (all E
    units at a, all I units at b) give the same output for every (a, b): the common mode is gone."""
    torch.manual_seed(0)
    layer = nn.Linear(10, 6, bias=False)
    bc.apply(nn.Sequential(layer), {"dale": {"exempt": [], "population_norm": "divisive"}})
    outs = [layer(torch.cat([torch.full((1, 8), a), torch.full((1, 2), b)], 1)) for a, b in [(1, 1), (3, 0.5),
                                                                                               (0.2, 7)]]
    # x~ = 1 in every unit, so y_i = sum_j W_ij = 0 by the balanced init (up to eps / a)
    for out in outs:
        assert torch.allclose(out, torch.zeros_like(out), atol=1e-2)
    plain = nn.Linear(10, 6, bias=False)
    bc.apply(nn.Sequential(plain), {"dale": {"exempt": []}})
    assert not torch.allclose(plain(torch.cat([torch.full((1, 8), 3.0), torch.full((1, 2), 0.5)], 1)),
                              torch.zeros(1, 6), atol=1e-2)


def test_gradient_flows_through_the_division_and_dale_holds():
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.Flatten()),
                     {"dale": {"population_norm": "divisive", "excitatory_fraction": 0.75}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), model)
    x = torch.randn(2, 3, 7, 7, requires_grad=True)
    for _ in range(5):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()
    assert x.grad is not None and model[2].weight.grad.abs().sum() > 0
    s = model[2].dale_sign.view(1, -1, 1, 1)
    assert (model[2].weight * s >= 0).all()
    assert getattr(model[0], "attachments", None) is None or not any(
        isinstance(a, PopulationNorm) for a in model[0].attachments)


def test_remove_takes_the_hook_off():
    torch.manual_seed(0)
    layer = nn.Linear(4, 2)
    model = bc.apply(nn.Sequential(layer), {"dale": {"exempt": [], "population_norm": "divisive"}})
    bc.remove(model)
    x = torch.rand(3, 4)
    assert torch.allclose(layer(x), x @ layer.weight.T + layer.bias)


def test_sign_symmetry_broadcast_is_removed_by_the_norms_backward():
    """Under Dale, sign symmetry's B = scale * 1 s^T sends every unit j of population P the same error g_j = s_P G;
    the division's Jacobian J = I / (a + eps) - x 1^T / (|P| (a + eps)^2) maps it to g_j eps / (a_P + eps)^2,
    a factor eps / (a_P + eps) of what the division alone would pass (docs: results.md, "Deep Dale networks")."""
    torch.manual_seed(0)
    layer = nn.Linear(10, 6, bias=False)
    model = bc.apply(nn.Sequential(layer), {"feedback": {"rule": "sign_symmetry"},
                                            "dale": {"exempt": [], "population_norm": "divisive"}})
    x = torch.rand(4, 10, requires_grad=True)
    y = model(x)
    y.pow(2).sum().backward()
    g = (2 * y.detach()) @ layer.backward_weight()          # B^T delta, by hand
    s = layer.dale_sign
    assert torch.allclose(g[:, s > 0], g[:, :1].expand(-1, int((s > 0).sum())))  # uniform within E: a broadcast
    eps = 1e-3
    a = torch.where(s > 0, x.detach()[:, s > 0].mean(1, keepdim=True), x.detach()[:, s < 0].mean(1, keepdim=True))
    # (the two terms of J^T g cancel to ~1e-3 of each: float32 rounding leaves ~1e-4 relative error)
    assert torch.allclose(x.grad, g * eps / (a + eps) ** 2, rtol=1e-2, atol=1e-6)
    assert (x.grad.abs() <= 0.01 * (g / (a + eps)).abs()).all()   # eps / (a + eps) < 1% of the undivided error


def test_signed_input_is_refused():
    """The gain 1 / (a_P + eps) is a rate normalisation: a negative entry of the input is refused, naming the key."""
    layer = nn.Linear(4, 2, bias=False)
    model = bc.apply(nn.Sequential(layer), {"dale": {"exempt": [], "excitatory_fraction": 0.5,
                                                     "population_norm": "divisive"}})
    model(torch.tensor([[1.0, 0.0, 2.0, 3.0]]))                      # rates: fine
    with pytest.raises(ConfigError, match="0: dale.population_norm: divisive needs non-negative inputs") as err:
        model(torch.tensor([[1.0, -0.5, 2.0, 3.0]]))
    assert err.value.key == "dale.population_norm"


def test_the_norm_is_pooled_inhibition_its_jacobian_by_hand():
    """z_i = sum_j W_ij x_j / (a_P(j) + eps): dz_i/dx_k = W_ik g_P - g_P^2 (1/|P|) sum_{j in P} W_ij x_j, k in P,
    g_P = 1 / (a_P + eps): each population's pool subtracts its units' mean drive, so an E input's effective weight
    can be negative (and an I input's positive) although W obeys Dale."""
    layer = nn.Linear(4, 2, bias=False)
    model = bc.apply(nn.Sequential(layer), {"dale": {"exempt": [], "excitatory_fraction": 0.5,
                                                     "population_norm": "divisive"}})
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 3.0, -1.0, -2.0], [2.0, 0.5, -3.0, -0.5]]))
    s = layer.dale_sign
    assert s.tolist() == [1.0, 1.0, -1.0, -1.0] and bool((layer.weight * s >= 0).all())
    x, eps = torch.tensor([1.0, 3.0, 2.0, 6.0]), 1e-3
    w = layer.weight.detach()
    jac = torch.zeros(2, 4)
    for pop in ([0, 1], [2, 3]):
        g = 1 / (x[pop].mean() + eps)
        drive = (w[:, pop] * x[pop]).sum(1)                                  # sum_{j in P} W_ij x_j, per output
        for k in pop:
            jac[:, k] = w[:, k] * g - g**2 * drive / len(pop)
    auto = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0))[0], x)
    assert torch.allclose(auto, jac, atol=1e-6)
    assert int((jac * s < 0).sum()) == 4    # against the type: entries (0, 0), (1, 1), (0, 2), (1, 3)
