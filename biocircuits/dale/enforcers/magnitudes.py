"""The magnitudes f of the reparametrised Dale enforcers, W = s * f(V) with s = +-1 per input unit: f = |.| and
f = softplus, each one autograd node whose forward and backward make as few passes over the weights as torch's
eager ops allow."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable


def softplus(latent: Tensor) -> Tensor:
    """softplus(V) = log(1 + e^V), elementwise, V any shape; float32 rounded once from float64 (bfloat16 and float16
    through float32, as torch converts float64 to them: rounded twice, so rarely one step off).

    torch's float32 ``F.softplus`` is log1p(exp(V)) with a scalar float32 ``log1p`` (about 25-40 ns per value on
    an AVX-512 CPU, against about 1 ns for ``exp`` or ``log``) and misses the correctly rounded value by one float32
    step on 11-20% of values. Here V is widened to float64, ``F.softplus`` runs in float64 (vectorised ``exp`` and
    ``log1p``, error about 1e-16 relative) and the result is rounded once to V's dtype: correctly rounded except
    when the float64 value lies within about 1e-16 of a float32 rounding boundary (none in the sweeps of
    ``tests/dale/test_magnitudes.py`` and ``benchmarks/dale_magnitudes.py``), so never more than 1 ulp off. For
    V > 20 float64 ``F.softplus`` returns V, the float32 rounding of the exact value V + log1p(e^-V) (the second
    term is below 2.1e-9, under half an ulp of V). Float64 V keeps ``F.softplus`` itself (torch's values, bit for
    bit: V above 20 returned as V), and so does V on an MPS device (no float64 there). Allocates a float64 copy of V
    while it runs."""
    if latent.dtype == torch.float64 or latent.device.type == "mps":
        return F.softplus(latent)
    wide = latent.to(torch.float64)
    torch.ops.aten.softplus.out(wide, 1, 20, out=wide)
    return wide.to(latent.dtype)


class SignedSoftplus(torch.autograd.Function):
    """W = s * softplus(V) as one autograd node: forward
    [`softplus`][biocircuits.dale.enforcers.magnitudes.softplus] (float64 inside, rounded once) and the sign flip
    in place; backward

        dL/dV = softplus'(V) (s * dL/dW),    softplus'(V) = sigmoid(V) = e^V / (1 + e^V)   (1 where V > 20)

    with ``aten.softplus_backward`` (vectorised float32 ``exp``; up to 2 ulp from the exact sigmoid, torch's
    values bit for bit) writing into the product's memory. Saved for backward: V (the parameter) and s. Shapes: V
    like W; s broadcast to it ((C_out, C_in/g, 1, ...) or (1, in))."""

    @staticmethod
    def forward(ctx, latent: Tensor, sign: Tensor) -> Tensor:
        ctx.save_for_backward(latent, sign)
        return softplus(latent).mul_(sign.to(latent.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        latent, sign = ctx.saved_tensors
        scaled = grad * sign.to(grad.dtype)
        return torch.ops.aten.softplus_backward.grad_input(scaled, latent, 1, 20, grad_input=scaled), None


class SignedAbs(torch.autograd.Function):
    """W = s * |V| as one autograd node, in one pass: W = copysign(V, s), which is s |V| bit for bit for s = +-1
    (signed zeros included: V = +-0 gives +0 under s = +1 and -0 under s = -1, as |V| * s does). Backward

        dL/dV = sgn(V) s dL/dW        (0 where V = +-0, signed as dL/dW * s)

    as sgn(V), times s in place, times dL/dW in place: one weight-sized tensor; the products are sign flips, so the
    values are those of autograd through s * |V| bit for bit. Saved for backward: V (the parameter) and s. Shapes as
    [`SignedSoftplus`][biocircuits.dale.enforcers.magnitudes.SignedSoftplus]."""

    @staticmethod
    def forward(ctx, latent: Tensor, sign: Tensor) -> Tensor:
        ctx.save_for_backward(latent, sign)
        return torch.copysign(latent, sign.to(latent.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        latent, sign = ctx.saved_tensors
        return torch.sgn(latent).mul_(sign.to(grad.dtype)).mul_(grad), None


# f in W = s f(V), by the enforcer's kind
MAGNITUDES: dict[str, type[torch.autograd.Function]] = {"abs": SignedAbs, "softplus": SignedSoftplus}
