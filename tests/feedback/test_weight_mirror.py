"""The weight mirror's conv correlation as matrix products (biocircuits/feedback/rules/weight_mirror.py): dilated and
grouped kernels against an explicit sum over the kernel taps, and the ops one mirror iteration runs."""

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import biocircuits as bc
from biocircuits.core.seeds import step_seed
from biocircuits.feedback.rules.weight_mirror import patch_correlation


class OpNames(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.__name__.split(".")[0])
        return func(*args, **(kwargs or {}))


def test_dilated_grouped_patch_correlation_is_the_sum_over_taps_by_hand():
    """C[o, c, i, j] = (1/n) sum_s y[s, o] t[s, o, c, i, j] with the taps t[s, o, c, i, j] = x[s, g(o) C_g + c, d_0 i,
    d_1 j] and y[s, o] = sum_{c,i,j} W[o, c, i, j] t[s, o, c, i, j]: every d-th position of the patch, in o's group."""
    gen = torch.Generator().manual_seed(0)
    n, groups, c_in, c_out, k, dil = 5, 2, 4, 6, (2, 3), (2, 1)
    w = torch.randn(c_out, c_in // groups, *k, generator=gen)
    patch = [d * (kk - 1) + 1 for d, kk in zip(dil, k, strict=True)]  # (3, 3)
    x = torch.randn(n, c_in, *patch, generator=gen)
    want = torch.zeros_like(w)
    c_g, o_g = c_in // groups, c_out // groups
    for o in range(c_out):
        g = o // o_g
        taps = torch.empty(n, c_g, *k)  # the taps kernel o reads
        for c in range(c_g):
            for i in range(k[0]):
                for j in range(k[1]):
                    taps[:, c, i, j] = x[:, g * c_g + c, dil[0] * i, dil[1] * j]
        y = (taps * w[o]).sum((1, 2, 3))  # (n,)
        want[o] = (y.view(n, 1, 1, 1) * taps).sum(0) / n
    assert torch.allclose(patch_correlation(x, w, dil, n), want, atol=1e-5)


def test_a_conv_mirror_iteration_runs_two_products_and_no_convolution():
    torch.manual_seed(0)
    opts = {"samples": 8, "lr": 0.5, "weight_decay": 0.5}
    conv = bc.apply(
        nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2)), {"feedback": {"rule": "weight_mirror", "options": opts}}
    )[0]
    w, b = conv.weight.detach().clone(), conv.feedback_weight.clone()
    with OpNames() as seen:
        conv.rule.mirror(conv)
    assert seen.ops.count("bmm") == 2 and not any("conv" in op for op in seen.ops)
    gen = torch.Generator().manual_seed(step_seed(conv.rule.mirror_seed, 1))
    x = torch.randn(8, 3, 5, 5, generator=gen)[:, :, ::2, ::2].reshape(8, -1)  # the dilated patch's taps
    y = x @ w.reshape(4, -1).T
    assert torch.allclose(conv.feedback_weight, b + 0.5 * ((y.T @ x / 8).view_as(w) - 0.5 * b), atol=1e-5)


def test_the_default_schedule_is_one_iteration_of_32_draws_after_every_step_by_hand():
    """Defaults: after every optimiser step, one iteration with n = 32, s = 1, eta = 0.05, lambda = 1:
    B <- B + 0.05 (y^T x / 32 - B), y = x W^T, x the (32, in) draw of (seed, layer, mirror, k)."""
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Linear(5, 3)), {"feedback": {"rule": "weight_mirror"}})
    layer, opt = model[0], bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    b = layer.feedback_weight.clone()
    for k in (1, 2):
        layer(torch.randn(2, 5)).sum().backward()
        opt.step()
        w = layer.weight.detach()
        x = torch.randn(32, 5, generator=torch.Generator().manual_seed(step_seed(layer.rule.mirror_seed, k)))
        b = b + 0.05 * ((x @ w.T).T @ x / 32 - b)
        assert int(layer.mirror_count) == k and torch.allclose(layer.feedback_weight, b, atol=1e-6)
