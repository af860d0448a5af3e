"""Keeping each weight's sign: projection, reparametrisation (abs, softplus) and exponentiated gradient."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .populations import sign_mask


def projection_bounds(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(lower, upper) bounds of the weights under Dale signs ``mask`` (+-1): [0, inf) for E, (-inf, 0] for I."""
    inf = torch.full_like(mask, float("inf"))
    zero = torch.zeros_like(mask)
    return torch.where(mask > 0, zero, -inf), torch.where(mask > 0, inf, zero)


@torch.no_grad()
def project_(weight: Tensor, bounds: tuple[Tensor, Tensor]) -> None:
    """Set to zero, in place, every weight whose sign breaks Dale: W <- clamp(W, lower, upper) with the
    bounds of :func:`projection_bounds` (one pass over W)."""
    weight.clamp_(min=bounds[0], max=bounds[1])


@torch.no_grad()
def exp_gradient_(weight: Tensor, before: Tensor) -> None:
    """Sign-preserving multiplicative update (exponentiated gradient, Cornford et al. 2024).

    The optimiser's additive update dW = W - W_old (the role of -lr * grad in plain EG) becomes
    W <- W_old * exp(sign(W_old) * dW), i.e. |W| <- |W_old| exp(-lr grad sign(W_old)) under SGD: no weight
    ever changes sign (zeros stay zero)."""
    weight.sub_(before).mul_(torch.sign(before)).exp_().mul_(before)


class SignedMagnitude(nn.Module):
    """Parametrisation W = s * f(V) with s the Dale sign per weight and f = |.| or softplus.

    ``right_inverse`` maps a weight to the latent V: |W| for abs, log(expm1(|W|)) for softplus (clamped to
    stay finite), so existing weights are kept (with their unit's sign) when the layer is converted."""

    def __init__(self, mask: Tensor, kind: str) -> None:
        super().__init__()
        self.register_buffer("sign", mask.clone(), persistent=True)
        self.kind = kind

    def forward(self, latent: Tensor) -> Tensor:
        magnitude = latent.abs() if self.kind == "abs" else F.softplus(latent)
        return self.sign.to(magnitude.dtype) * magnitude

    def right_inverse(self, weight: Tensor) -> Tensor:
        magnitude = weight.abs()
        if self.kind == "abs":
            return magnitude
        return torch.log(torch.expm1(magnitude.clamp(min=1e-6)))


def reparametrise(layer: nn.Module, kind: str) -> None:
    """Register ``SignedMagnitude`` on ``layer.weight`` (torch.nn.utils.parametrize; the state-dict key of the
    latent is ``parametrizations.weight.original``)."""
    parametrize.register_parametrization(layer, "weight", SignedMagnitude(sign_mask(layer), kind))


def latent_sign(layer: nn.Module, before: Tensor) -> Tensor | float:
    """The direction in which the trainable tensor grows |W|: +1 for softplus, sign(V) for abs, the Dale sign
    of a projected layer, sign(W) for an unconstrained one."""
    enforce = getattr(layer, "dale_enforce", None)
    if enforce == "softplus":
        return 1.0
    if enforce == "abs" or getattr(layer, "dale_sign", None) is None:
        return torch.sign(before)
    return sign_mask(layer)


ENFORCERS: dict[str, Callable[[nn.Module], None]] = {
    "project": lambda layer: None,   # acts after each optimiser step (see biocircuits.plasticity.bind)
    "exp_gradient": lambda layer: None,
    "abs": lambda layer: reparametrise(layer, "abs"),
    "softplus": lambda layer: reparametrise(layer, "softplus"),
}
