"""DANN's snapshot of the inhibitory parameters (P_before of the corrected updates) lives in buffers kept across
steps: the same memory every step, holding the parameters as they were before that step, and the corrected update
P_before + c (P - P_before) computed from it as by hand."""

import math

import torch

import biocircuits as bc
from biocircuits.core.interface import attachments_of


def test_snapshot_buffers_are_reused_and_hold_the_parameters_before_the_step(mlp):
    torch.manual_seed(0)
    model = bc.apply(mlp(6, 20, 10, 3), {"dale": {"architecture": "dann", "dann": {"inhibitory_fraction": 0.2}}})
    layer = model[2]
    att = attachments_of(layer).dale
    p = layer.parametrizations.weight[0]
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-2), model)
    x = torch.rand(5, 6)
    ptrs = []
    for _ in range(3):
        before = {n: getattr(p, n).detach().clone() for n in ("weight_ie", "weight_ei")}
        opt.zero_grad()
        out = model(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        # the optimiser's own step on each inhibitory tensor, by hand (SGD with momentum and decay, then the
        # correction and the projection)
        sgd = {}
        for n, t in before.items():
            buf = opt.state[getattr(p, n)].get("momentum_buffer")
            u = getattr(p, n).grad + 1e-2 * t
            m = u if buf is None else buf * 0.9 + u
            sgd[n] = t - 0.3 * m
        opt.step()
        assert set(att._before) == {"weight_ie", "weight_ei"}
        assert all(torch.equal(att._before[n], before[n]) for n in before)
        ptrs.append({n: t.data_ptr() for n, t in att._before.items()})
        scale = {"weight_ie": 1 / math.sqrt(10), "weight_ei": 1 / 20}
        for n, t in before.items():
            want = (t + scale[n] * (sgd[n] - t)).clamp(min=0)
            assert torch.allclose(getattr(p, n).detach(), want, atol=1e-6), n
    assert ptrs[0] == ptrs[1] == ptrs[2]  # no new snapshot tensors after the first step
