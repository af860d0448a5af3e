"""The weight mirror's Hebbian step as one product accumulated into B (biocircuits/feedback/rules/weight_mirror.py):
linear layers and dilated, grouped kernels (contiguous and channels-last) against explicit sums and matrix products,
the ops one mirror iteration runs, and B's relaxation to (s^2 / lambda) W."""

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import biocircuits as bc
from biocircuits.core.seeds import step_seed
from biocircuits.feedback.rules.weight_mirror import hebbian_step


def taps_by_hand(x, c_g: int, g: int, k, dil):
    """The taps a kernel of group ``g`` reads from the patches x (n, C_in, *patch): (n, C_in / groups, *k)."""
    taps = torch.empty(x.shape[0], c_g, *k, dtype=x.dtype)
    for c in range(c_g):
        for i in range(k[0]):
            for j in range(k[1]):
                taps[:, c, i, j] = x[:, g * c_g + c, dil[0] * i, dil[1] * j]
    return taps


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last, "float32 B"])
def test_the_fused_conv_update_is_the_sum_over_taps_by_hand(float64, layout):
    """B'[o] = beta B[o] + alpha sum_s y[s, o] t[s, o] with the taps t[s, o, c, i, j] = z[s, g(o) C_g + c, d_0 i, d_1 j]
    (every d-th position of the patch, in o's group) and y[s, o] = <W[o], t[s, o]>; B contiguous, channels-last, or
    of another dtype than W (the unfused path)."""
    gen = torch.Generator().manual_seed(0)
    n, groups, c_in, c_out, k, dil, beta, alpha = 5, 2, 4, 6, (2, 3), (2, 1), 0.7, 0.3
    w = torch.randn(c_out, c_in // groups, *k, generator=gen)
    b = torch.randn(c_out, c_in // groups, *k, generator=gen)
    z = torch.randn(n, c_in, 3, 3, generator=gen)  # patch = d (k - 1) + 1
    want = b.clone()
    c_g, o_g = c_in // groups, c_out // groups
    for o in range(c_out):
        taps = taps_by_hand(z, c_g, o // o_g, k, dil)  # (n, c_g, *k)
        y = (taps * w[o]).sum((1, 2, 3))  # (n,)
        want[o] = beta * b[o] + alpha * (y.view(n, 1, 1, 1) * taps).sum(0)
    if layout == "float32 B":
        b, want = b.float(), want.float()
    else:
        b, w = b.contiguous(memory_format=layout), w.contiguous(memory_format=layout)
    ptr = b.data_ptr()
    hebbian_step(b, w, z, dil, beta, alpha)
    assert b.data_ptr() == ptr and torch.allclose(b, want, atol=1e-6 if layout == "float32 B" else 1e-12)


def test_the_fused_linear_update_by_hand(float64):
    """B' = beta B + alpha (z W^T)^T z, as explicit matrix products."""
    gen = torch.Generator().manual_seed(1)
    w, b, z = (torch.randn(*shape, generator=gen) for shape in ((4, 7), (4, 7), (9, 7)))
    want = 0.9 * b + 0.2 * (z @ w.T).T @ z
    hebbian_step(b, w, z, (), 0.9, 0.2)
    assert torch.allclose(b, want, atol=1e-12)


class Outputs(TorchDispatchMode):
    """(op name, elements of its output, address of its output's storage) of every op run inside."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self.ops.append((func.__name__.split(".")[0], out.numel(), out.untyped_storage().data_ptr()))
        return out


@pytest.mark.parametrize("layer", [nn.Conv2d(4, 6, 3, dilation=2, groups=2), nn.Linear(5, 3)])
def test_a_mirror_iteration_is_two_products_and_writes_b_once(layer):
    """No convolution and no weight-sized temporary: y^T = W z^T (bmm), then B <- beta B + alpha y^T z (baddbmm_,
    in place on B); every weight-sized output of the iteration is W's or B's own storage."""
    layer = bc.apply(nn.Sequential(layer), {"feedback": {"rule": "weight_mirror", "options": {"samples": 8}}})[0]
    own = {layer.weight.data_ptr(), layer.feedback_weight.data_ptr()}
    with Outputs() as seen:
        layer.rule.mirror(layer)
    names = [name for name, _, _ in seen.ops]
    assert names.count("bmm") == 1 and not any("conv" in op for op in names)
    assert [ptr for name, _, ptr in seen.ops if name == "baddbmm_"] == [layer.feedback_weight.data_ptr()]
    assert not [name for name, numel, ptr in seen.ops if numel == layer.weight.numel() and ptr not in own]


def test_the_mirror_phase_relaxes_b_to_s2_over_lambda_w_by_hand(float64):
    """Iterating B_k = (1 - eta lambda) B_(k-1) + (eta s^2 / n) (z_k W^T)^T z_k (z_k the seeded draws) by hand for a
    float64 conv layer (groups 2, dilation 2), and the recursion's mean: B_K -> (1 - eta lambda)^K B_0 +
    (1 - (1 - eta lambda)^K) (s^2 / lambda) W, within the sampling error of n = 4096 draws."""
    s, eta, lam, n, iters = 2.0, 0.4, 0.5, 4096, 8
    opts = {"samples": n, "lr": eta, "weight_decay": lam, "noise_std": s}
    conv = nn.Conv2d(4, 2, (2, 2), dilation=2, groups=2)
    conv = bc.apply(nn.Sequential(conv), {"feedback": {"rule": "weight_mirror", "options": opts}})[0]
    w, b0 = conv.weight.detach().clone(), conv.feedback_weight.clone()
    b = b0.clone()
    for k in range(1, iters + 1):
        conv.rule.mirror(conv)
        gen = torch.Generator().manual_seed(step_seed(conv.rule.mirror_seed, k))
        z = torch.randn(n, 4, 3, 3, generator=gen)[:, :, ::2, ::2]  # drawn in the default dtype
        for g in range(2):  # per group: y = z_g W_g^T (n, 1), B_g <- beta B_g + alpha y^T z_g
            z_g, w_g = z[:, 2 * g : 2 * g + 2].reshape(n, -1), w[g].reshape(1, -1)
            b[g] = (1 - eta * lam) * b[g] + eta * s**2 / n * ((z_g @ w_g.T).T @ z_g).view_as(b[g])
    assert torch.allclose(conv.feedback_weight, b, atol=1e-12)
    decay = (1 - eta * lam) ** iters
    mean = decay * b0 + (1 - decay) * (s**2 / lam) * w
    assert (conv.feedback_weight - mean).norm() < 0.05 * mean.norm()
    assert (b0 - mean).norm() > 0.5 * mean.norm()  # it moved


def mirrored_by_hand(spec_options, n_in, steps, warmup, every, n, eta):
    """Train Linear(n_in, 2) under weight_mirror with ``spec_options`` for ``steps`` SGD steps, checking after each
    that B equals the hand recursion: a phase after step t when t <= warmup or t % every == 0, each
    B <- B + eta (y^T x / n - B) (s = 1, lambda = 1), y = x W^T, x the (n, n_in) draw of (seed, layer, mirror, k)
    and W that of the step. Returns the number of phases."""
    torch.manual_seed(0)
    spec = {"feedback": {"rule": "weight_mirror", "options": spec_options}}
    model = bc.apply(nn.Sequential(nn.Linear(n_in, 2)), spec)
    layer, opt = model[0], bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    b, k = layer.feedback_weight.clone(), 0
    for t in range(1, steps + 1):
        opt.zero_grad()
        layer(torch.randn(2, n_in)).sum().backward()
        opt.step()
        if t <= warmup or t % every == 0:
            k += 1
            w = layer.weight.detach()
            x = torch.randn(n, n_in, generator=torch.Generator().manual_seed(step_seed(layer.rule.mirror_seed, k)))
            b = b + eta * ((x @ w.T).T @ x / n - b)
        assert int(layer.mirror_count) == k and torch.allclose(layer.feedback_weight, b, atol=1e-6)
    return k


def test_the_default_schedule_is_a_40_step_warm_up_then_64_draws_every_8_steps_by_hand():
    """Defaults: one iteration after each of the first 40 optimiser steps, then after every 8th (48, 56, ...), each
    with n = 64, s = 1, eta = 0.05, lambda = 1."""
    assert mirrored_by_hand({}, 5, 56, warmup=40, every=8, n=64, eta=0.05) == 42


def test_the_warm_up_runs_the_phase_after_each_early_step_then_every_k_by_hand():
    """warmup_steps 2, mirror_every 3: phases after steps 1, 2 (the warm-up), 3, 6."""
    opts = {"samples": 4, "mirror_every": 3, "warmup_steps": 2, "lr": 0.1}
    assert mirrored_by_hand(opts, 3, 7, warmup=2, every=3, n=4, eta=0.1) == 4
