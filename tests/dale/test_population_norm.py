"""``dale.population_norm: divisive``: each constrained layer's input divided by its E and I populations' mean
activity, against hand computations; the rank-one mean part of a balanced column-sign W then drives nothing."""

import torch
from torch import nn

import biocircuits as bc
from biocircuits.dale.population_norm import PopulationNorm, divide_by_population_mean, jacobian_against_type_bound


def test_linear_input_divided_by_each_populations_mean_by_hand():
    torch.manual_seed(0)
    layer = nn.Linear(4, 2, bias=False)
    model = bc.apply(
        nn.Sequential(layer), {"dale": {"exempt": [], "excitatory_fraction": 0.5, "population_norm": "divisive"}}
    )
    dale = layer.attachments.of("dale")  # beside the enforcer, which stays the layer's one Dale attachment
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
    outs = [
        layer(torch.cat([torch.full((1, 8), a), torch.full((1, 2), b)], 1)) for a, b in [(1, 1), (3, 0.5), (0.2, 7)]
    ]
    # x~ = 1 in every unit, so y_i = sum_j W_ij = 0 by the balanced init (up to eps / a)
    for out in outs:
        assert torch.allclose(out, torch.zeros_like(out), atol=1e-2)
    plain = nn.Linear(10, 6, bias=False)
    bc.apply(nn.Sequential(plain), {"dale": {"exempt": []}})
    assert not torch.allclose(
        plain(torch.cat([torch.full((1, 8), 3.0), torch.full((1, 2), 0.5)], 1)), torch.zeros(1, 6), atol=1e-2
    )


def test_gradient_flows_through_the_division_and_dale_holds():
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.Flatten()),
        {"dale": {"population_norm": "divisive", "excitatory_fraction": 0.75}},
    )
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
        isinstance(a, PopulationNorm) for a in model[0].attachments
    )


def test_remove_keeps_the_division_on_the_plain_layer():
    """bc.remove gives plain torch layers (same state_dict keys) that still divide their input by the populations'
    mean activity: eval outputs equal before and after, where dropping the norm changes them."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 4)
    ).eval()
    keys = list(model.state_dict())
    bc.apply(model, "dale")
    x = torch.rand(2, 3, 7, 7)
    with torch.no_grad():
        before = model(x)
        w = model[5].weight.detach().clone()
        h = model[:5](x)
    bc.remove(model)
    assert [type(m) for m in model] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear]
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert torch.equal(model(x), before)
        assert not torch.allclose(h @ w.T + model[5].bias, before, atol=1e-3)  # the bare linear map differs


def test_sign_symmetry_broadcast_is_removed_by_the_norms_backward():
    """Under Dale, sign symmetry's B = scale * 1 s^T sends every unit j of population P the same error g_j = s_P G;
    the division's Jacobian J = I / (a + eps) - x 1^T / (|P| (a + eps)^2) maps it to g_j eps / (a_P + eps)^2,
    a factor eps / (a_P + eps) of what the division alone would pass (docs: results.md, "Deep Dale networks")."""
    torch.manual_seed(0)
    layer = nn.Linear(10, 6, bias=False)
    model = bc.apply(
        nn.Sequential(layer),
        {"feedback": {"rule": "sign_symmetry"}, "dale": {"exempt": [], "population_norm": "divisive"}},
    )
    x = torch.rand(4, 10, requires_grad=True)
    y = model(x)
    y.pow(2).sum().backward()
    g = (2 * y.detach()) @ layer.backward_weight()  # B^T delta, by hand
    s = layer.dale_sign
    assert torch.allclose(g[:, s > 0], g[:, :1].expand(-1, int((s > 0).sum())))  # uniform within E: a broadcast
    eps = 1e-3
    a = torch.where(s > 0, x.detach()[:, s > 0].mean(1, keepdim=True), x.detach()[:, s < 0].mean(1, keepdim=True))
    # (the two terms of J^T g cancel to ~1e-3 of each: float32 rounding leaves ~1e-4 relative error)
    assert torch.allclose(x.grad, g * eps / (a + eps) ** 2, rtol=1e-2, atol=1e-6)
    assert (x.grad.abs() <= 0.01 * (g / (a + eps)).abs()).all()  # eps / (a + eps) < 1% of the undivided error


def test_signed_input_divided_by_each_populations_mean_absolute_activity_by_hand():
    """For signed activity (Hardswish, SiLU, GELU) the pool reads |x|: g_P = 1 / (mean_{k in P} |x_k| + eps) is
    positive and at most 1 / eps, so no gain is negative or unbounded (the rate version divided by a mean near 0)."""
    layer = nn.Linear(4, 2, bias=False)
    model = bc.apply(
        nn.Sequential(layer), {"dale": {"exempt": [], "excitatory_fraction": 0.5, "population_norm": "divisive"}}
    )
    x = torch.tensor([[1.0, -1.0, -2.0, 6.0]])  # E mean 0 (mean |x| 1), I mean 2 (mean |x| 4)
    eps = 1e-3
    x_norm = torch.tensor([[1 / (1 + eps), -1 / (1 + eps), -2 / (4 + eps), 6 / (4 + eps)]])
    assert torch.allclose(model(x), x_norm @ layer.weight.detach().T)
    zero = divide_by_population_mean(torch.tensor([[0.0, 0.0, -3.0, 3.0]]), torch.tensor([1.0, 1, -1, -1]), eps, -1)
    assert torch.allclose(zero, torch.tensor([[0.0, 0.0, -3 / (3 + eps), 3 / (3 + eps)]]))


def test_signed_input_jacobian_by_hand_and_at_most_p_minus_one_entries_against_type_per_row():
    """dz_i/dx_k = g_P (W_ik - g_P sgn(x_k) c_iP / |P|), c_iP = sum_{j in P} W_ij x_j (torch.autograd's Jacobian);
    in every row and population the largest |W_ik| keeps its type, so at most |P| - 1 entries act against it, and only
    entries with |W_ik| < rho_P max |W_ij| and sgn(x_k) s_P c_iP > 0; the audit's bound n_out (|E| - 1 + |I| - 1)."""
    torch.manual_seed(3)
    layer = nn.Linear(9, 7, bias=False)
    model = bc.apply(
        nn.Sequential(layer), {"dale": {"exempt": [], "excitatory_fraction": 0.67, "population_norm": "divisive"}}
    )
    s, w, eps = layer.dale_sign, layer.weight.detach(), 1e-3
    x = torch.rand(9) * torch.tensor([1.0, -0.5, 1, 1, 0, 1, 1, -1, 1])  # signed, one exact zero
    auto = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0))[0], x)
    jac, against = torch.zeros(7, 9), 0
    for pop in (torch.nonzero(s > 0).flatten(), torch.nonzero(s < 0).flatten()):
        m = x[pop].abs().mean()
        g, rho = 1 / (m + eps), m / (m + eps)
        c = (w[:, pop] * x[pop]).sum(1, keepdim=True)  # (7, 1): each row's drive from P
        jac[:, pop] = g * (w[:, pop] - g * torch.sign(x[pop]) * c / len(pop))
        bad = jac[:, pop] * s[pop] < 0
        assert (bad.sum(1) <= len(pop) - 1).all()
        top = w[:, pop].abs().argmax(1)
        assert not bad[torch.arange(7), top].any()  # the largest weight keeps its type
        size = w[:, pop].abs() < rho * w[:, pop].abs().max(1, keepdim=True).values
        assert (~bad | (size & (torch.sign(x[pop]) * s[pop] * c > 0))).all()
        against += int(bad.sum())
    assert torch.allclose(auto, jac, atol=1e-5)
    assert 0 < against <= jacobian_against_type_bound(layer, s) == 7 * ((6 - 1) + (3 - 1))


def test_audit_reports_the_pools_and_the_bound_for_a_conv():
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Conv2d(3, 10, 1), nn.ReLU(), nn.Conv2d(10, 4, 3)), "dale")
    report = bc.audit(model, spectra=False)
    row = next(r for r in report.layers if r.name == "2")
    assert row.pooled_units == 2 and (row.excitatory, row.inhibitory) == (8, 2)
    bound = 4 * 9 * ((8 - 1) + (2 - 1))  # n_out k_h k_w (|E| - 1 + |I| - 1)
    assert any(
        line.startswith("2: population_norm: 2 pooled inhibitory units") and f"up to {bound} " in line
        for line in report.leaks
    )
    assert next(r for r in report.layers if r.name == "0").pooled_units == 0  # exempt: the raw input's layer


def test_the_norm_is_pooled_inhibition_its_jacobian_by_hand():
    """z_i = sum_j W_ij x_j / (a_P(j) + eps): dz_i/dx_k = W_ik g_P - g_P^2 (1/|P|) sum_{j in P} W_ij x_j, k in P,
    g_P = 1 / (a_P + eps): each population's pool subtracts its units' mean drive, so an E input's effective weight
    can be negative (and an I input's positive) although W obeys Dale."""
    layer = nn.Linear(4, 2, bias=False)
    model = bc.apply(
        nn.Sequential(layer), {"dale": {"exempt": [], "excitatory_fraction": 0.5, "population_norm": "divisive"}}
    )
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 3.0, -1.0, -2.0], [2.0, 0.5, -3.0, -0.5]]))
    s = layer.dale_sign
    assert s.tolist() == [1.0, 1.0, -1.0, -1.0] and bool((layer.weight * s >= 0).all())
    x, eps = torch.tensor([1.0, 3.0, 2.0, 6.0]), 1e-3
    w = layer.weight.detach()
    jac = torch.zeros(2, 4)
    for pop in ([0, 1], [2, 3]):
        g = 1 / (x[pop].mean() + eps)
        drive = (w[:, pop] * x[pop]).sum(1)  # sum_{j in P} W_ij x_j, per output
        for k in pop:
            jac[:, k] = w[:, k] * g - g**2 * drive / len(pop)
    auto = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0))[0], x)
    assert torch.allclose(auto, jac, atol=1e-6)
    assert int((jac * s < 0).sum()) == 4  # against the type: entries (0, 0), (1, 1), (0, 2), (1, 3)
