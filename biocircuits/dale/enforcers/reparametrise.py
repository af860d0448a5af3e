"""Reparametrisation: W = s * f(V) with f = |.| or softplus, so W keeps its sign whatever the optimiser does."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from biocircuits.core.celltypes import sign_mask
from biocircuits.core.layers import weight_name

from .base import ENFORCERS, DaleEnforcer
from .magnitudes import MAGNITUDES


class SignedMagnitude(nn.Module):
    """Parametrisation W = s * f(V) with s the Dale sign per weight and f = |.| or softplus (one autograd node each:
    ``MAGNITUDES`` in [`magnitudes`][biocircuits.dale.enforcers.magnitudes]).

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
    """W = s * |V|: the optimiser updates V; |W| grows where V moves away from 0 (growth sign = sign(V)).

    Computed as copysign(V, s) in one pass, dL/dV = sgn(V) s dL/dW
    ([`SignedAbs`][biocircuits.dale.enforcers.magnitudes.SignedAbs])."""

    name = "abs"
    kind = "abs"

    def growth_sign(self, layer: nn.Module, before: Tensor) -> Tensor:
        return torch.sign(before)


@ENFORCERS.register
class Softplus(Reparametrised):
    """W = s * softplus(V), softplus(V) = log(1 + e^V): |W| grows with V (growth sign +1).

    softplus is computed in float64 and rounded once (correctly rounded float32 weights, about 3x faster than
    torch's float32 ``F.softplus`` on CPU); dL/dV = sigmoid(V) s dL/dW
    ([`SignedSoftplus`][biocircuits.dale.enforcers.magnitudes.SignedSoftplus])."""

    name = "softplus"
    kind = "softplus"

    def growth_sign(self, layer: nn.Module, before: Tensor) -> float:
        return 1.0
