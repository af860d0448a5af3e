"""Cell types of presynaptic units: a +1 (excitatory) / -1 (inhibitory) sign per input feature or channel,
broadcast to a layer's weight shape."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .interface import attachments_of
from .layers import weight_shape


def cell_types(layer: nn.Module) -> Tensor | None:
    """The layer's Dale signs s (buffer ``dale_sign``: +1 E / -1 I per presynaptic unit), None when it has none."""
    return layer._buffers.get("dale_sign")


class Populations(NamedTuple):
    """A Dale layer's cell counts, named apart: its presynaptic units by type (the columns of W, ``dale_sign``)
    and the inhibitory interneurons the layer holds itself (a DANN layer's n_i; 0 for column-sign layers).
    ``str``: ``16E/0I`` or ``16E/0I + 3 interneurons``, as ``bc.describe`` and ``bc.audit`` both print it."""

    excitatory: int
    inhibitory: int
    interneurons: int = 0

    def __str__(self) -> str:
        inner = f" + {self.interneurons} interneuron{'s' * (self.interneurons != 1)}" if self.interneurons else ""
        return f"{self.excitatory}E/{self.inhibitory}I{inner}"


def column_populations(layer: nn.Module) -> Populations:
    """E and I presynaptic units of a layer with a ``dale_sign`` buffer: #(s > 0), #(s < 0); no interneurons."""
    sign = cell_types(layer)
    return Populations(int((sign > 0).sum()), int((sign < 0).sum()))


def populations(layer: nn.Module) -> Populations | None:
    """The layer's cell counts as its Dale attachment states them (``population_counts``), else from its
    ``dale_sign`` ([`column_populations`][biocircuits.core.celltypes.column_populations]); None for a layer without Dale
    signs."""
    if cell_types(layer) is None:
        return None
    dale = getattr(attachments_of(layer), "dale", None)
    counts = getattr(dale, "population_counts", None)
    return Populations(*counts(layer)) if counts is not None else column_populations(layer)


def presynaptic_units(layer: nn.Module) -> int:
    """Number of presynaptic units: ``in_features`` of a linear layer, ``in_channels`` of a conv layer,
    ``embed_dim`` of an attention's packed in-projection (the residual stream's units its q, k and v read)."""
    return int(getattr(layer, "in_features", None) or getattr(layer, "in_channels", None) or layer.embed_dim)


def assign_signs(n_units: int, excitatory_fraction: float, assignment: str, seed: int) -> Tensor:
    """+1 (E) / -1 (I) per unit: round(fraction * n) units are E. ``block`` puts the E units first;
    ``random`` permutes them with a generator seeded by (seed, n_units), so every layer reading a tensor of
    the same width (e.g. a ResNet block's conv1 and its downsample) sees the same types."""
    n_e = int(round(excitatory_fraction * n_units))
    sign = torch.cat([torch.ones(n_e), -torch.ones(n_units - n_e)])
    if assignment == "random":
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + n_units)
        sign = sign[torch.randperm(n_units, generator=gen)]
    return sign


def sign_mask(layer: nn.Module, dale_sign: Tensor | None = None) -> Tensor:
    """``dale_sign`` (s, one entry per presynaptic unit) broadcast to the weight's shape: for a conv with
    ``groups`` g, output channel o in group k = o // (C_out / g) reads input channels k C_in/g ... (k+1) C_in/g - 1.

    Shapes: linear -> (1, in); conv -> (C_out, C_in / g, 1, ..., 1)."""
    sign = layer.dale_sign if dale_sign is None else dale_sign
    shape = weight_shape(layer)
    if len(shape) == 2:
        return sign.view(1, -1)
    groups = getattr(layer, "groups", 1)
    c_out, c_in_g = shape[0], shape[1]
    per = sign.view(groups, 1, c_in_g).expand(groups, c_out // groups, c_in_g).reshape(c_out, c_in_g)
    return per.view(c_out, c_in_g, *([1] * (len(shape) - 2)))


def population_mask(layer: nn.Module, population: str) -> Tensor | None:
    """Weight-broadcastable bool mask of the weights leaving ``population`` (E, I) units; None for ``any``."""
    if population == "any":
        return None
    mask = sign_mask(layer)
    return mask > 0 if population == "E" else mask < 0


def synapse_mask(layer: nn.Module, pre: str, post: str = "any", post_sign: Tensor | None = None) -> Tensor | None:
    """Weight-broadcastable bool mask of the synapses from ``pre`` units onto ``post`` units (E, I or any each):
    ``population_mask(layer, pre)`` and, unless ``post`` is any, ``post_sign`` (the type of each output unit,
    shape (out,)) viewed as (out, 1, ..., 1). None when both are ``any`` (every synapse)."""
    pre_mask = population_mask(layer, pre)
    if post == "any":
        return pre_mask
    if post_sign is None:
        raise ValueError("a postsynaptic type needs the types of the layer's output units")
    shape = weight_shape(layer)
    sign = post_sign.to(pre_mask.device if pre_mask is not None else post_sign.device)
    post_mask = (sign > 0 if post == "E" else sign < 0).view(-1, *([1] * (len(shape) - 1)))
    return post_mask if pre_mask is None else pre_mask & post_mask
