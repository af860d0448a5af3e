"""Giving weights their unit's sign, and the balanced E/I initialisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import sign_mask
from biocircuits.core.registry import Registry


@torch.no_grad()
def signed_magnitudes(weight: Tensor, mask: Tensor) -> Tensor:
    """W' = s * |W|: keep each weight's magnitude, take its presynaptic unit's sign."""
    return mask.to(weight.dtype) * weight.abs()


@torch.no_grad()
def balance(weight: Tensor, mask: Tensor) -> Tensor:
    """Rescale the inhibitory weights of each postsynaptic unit i so that its E and I weights cancel:

        sum_{j in E} |W_ij| = sum_{j in I} |W_ij|    (summed over kernel positions for a conv),

    so for non-negative inputs of equal mean the expected pre-activation sum_j W_ij x_j is zero.
    Shapes: weight (out, in, *kernel); mask broadcastable to it. A unit with no E or no I input is left alone."""
    w = signed_magnitudes(weight, mask)
    full = mask.expand_as(w)
    dims = tuple(range(1, w.dim()))
    exc = (w * (full > 0)).sum(dims, keepdim=True)
    inh = (-w * (full < 0)).sum(dims, keepdim=True)
    scale = torch.where((inh > 0) & (exc > 0), exc / inh.clamp(min=1e-30), torch.ones_like(inh))
    return torch.where(full < 0, w * scale, w)


INITS: Registry = Registry("Dale initialisation")
INITS.register("balanced")(balance)
INITS.register("keep")(signed_magnitudes)


@torch.no_grad()
def initialise(layer: nn.Module, how: str) -> None:
    """Apply ``INITS[how]`` to ``layer.weight`` in place (before any reparametrisation)."""
    layer.weight.copy_(INITS.get(how)(layer.weight, sign_mask(layer)))
