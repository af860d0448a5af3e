"""Reparametrisation: W = s * f(V) with f = |.| or softplus, so W keeps its sign whatever the optimiser does."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.utils import parametrize

from biocircuits.core.celltypes import sign_mask
from biocircuits.core.layers import weight_name

from .base import ENFORCERS, DaleEnforcer


class SignedSoftplus(torch.autograd.Function):
    """W = s * softplus(V) as one autograd node: forward one ``softplus`` and an in-place sign flip (autograd's
    ``s * F.softplus(V)`` allocates a second weight-sized tensor), backward

        dL/dV = softplus'(V) (s * dL/dW),    softplus'(V) = e^V / (1 + e^V)   (1 where V > 20, as torch's)

    with ``aten.softplus_backward`` writing into the product's memory (two weight-sized tensors fewer per step). The
    values are autograd's bit for bit. Shapes: V like W; s broadcast to it ((C_out, C_in/g, 1, ...) or (1, in))."""

    @staticmethod
    def forward(ctx, latent: Tensor, sign: Tensor) -> Tensor:
        ctx.save_for_backward(latent, sign)
        return F.softplus(latent).mul_(sign.to(latent.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        latent, sign = ctx.saved_tensors
        scaled = grad * sign.to(grad.dtype)
        return torch.ops.aten.softplus_backward.grad_input(scaled, latent, 1, 20, grad_input=scaled), None


class SignedAbs(torch.autograd.Function):
    """W = s * |V| as one autograd node (one weight-sized tensor in forward, two in backward instead of two and
    three); backward dL/dV = (s * dL/dW) sgn(V), autograd's values bit for bit. Shapes as
    [`SignedSoftplus`][biocircuits.dale.enforcers.reparametrise.SignedSoftplus]."""

    @staticmethod
    def forward(ctx, latent: Tensor, sign: Tensor) -> Tensor:
        ctx.save_for_backward(latent, sign)
        return latent.abs().mul_(sign.to(latent.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        latent, sign = ctx.saved_tensors
        return (grad * sign.to(grad.dtype)).mul_(latent.sgn()), None


# f in W = s f(V), by the enforcer's kind
MAGNITUDES: dict[str, type[torch.autograd.Function]] = {"abs": SignedAbs, "softplus": SignedSoftplus}


class SignedMagnitude(nn.Module):
    """Parametrisation W = s * f(V) with s the Dale sign per weight and f = |.| or softplus.

    ``right_inverse`` maps a weight to the latent V: |W| for abs, log(expm1(|W|)) for softplus (clamped to
    stay finite), so existing weights are kept (with their unit's sign) when the layer is converted."""

    def __init__(self, mask: Tensor, kind: str) -> None:
        super().__init__()
        self.register_buffer("sign", mask.clone(), persistent=True)
        self.kind = kind

    def forward(self, latent: Tensor) -> Tensor:
        return MAGNITUDES[self.kind].apply(latent, self.sign)

    def right_inverse(self, weight: Tensor) -> Tensor:
        magnitude = weight.abs()
        if self.kind == "abs":
            return magnitude
        return torch.log(torch.expm1(magnitude.clamp(min=1e-6)))


class Reparametrised(DaleEnforcer):
    """Registers [`SignedMagnitude`][biocircuits.dale.enforcers.reparametrise.SignedMagnitude] on ``layer.weight``
    (``torch.nn.utils.parametrize``: the latent's state-dict key is ``parametrizations.weight.original``; the mask is
    ``parametrizations.weight.0.sign``). On an attention's packed in-projection it is registered on
    ``in_proj_weight`` ([`weight_name`][biocircuits.core.layers.weight_name]), which the layer reads as ``.weight``."""

    kind: ClassVar[str]
    reparametrises = True

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        self.parameter_order = list(layer._parameters)
        self.weight_name = weight_name(layer)
        parametrize.register_parametrization(layer, self.weight_name, SignedMagnitude(sign_mask(layer), self.kind))
        self.buffer_names.append(f"parametrizations.{self.weight_name}.0.sign")

    def detach(self, layer: nn.Module) -> None:
        """Keep the current W as a plain parameter, drop the parametrisation and ``dale_sign``."""
        self.buffer_names.remove(f"parametrizations.{self.weight_name}.0.sign")
        parametrize.remove_parametrizations(layer, self.weight_name, leave_parametrized=True)
        order = {name: i for i, name in enumerate(self.parameter_order)}  # state_dict keys in their old order
        layer._parameters = dict(sorted(layer._parameters.items(), key=lambda kv: order.get(kv[0], len(order))))
        super().detach(layer)


@ENFORCERS.register
class Abs(Reparametrised):
    """W = s * |V|: the optimiser updates V; |W| grows where V moves away from 0 (growth sign = sign(V))."""

    name = "abs"
    kind = "abs"

    def growth_sign(self, layer: nn.Module, before: Tensor) -> Tensor:
        return torch.sign(before)


@ENFORCERS.register
class Softplus(Reparametrised):
    """W = s * softplus(V): |W| grows with V (growth sign +1)."""

    name = "softplus"
    kind = "softplus"

    def growth_sign(self, layer: nn.Module, before: Tensor) -> float:
        return 1.0
