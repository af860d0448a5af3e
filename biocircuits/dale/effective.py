"""Effective (normalisation-folded) signs: a per-unit gain applied after a layer multiplies every synapse onto
that unit. BatchNorm in eval mode computes y_o = gamma_o (z_o - mu_o) / sqrt(var_o + eps) + beta_o, so the effective
weights are W_eff[o, ...] = W[o, ...] * gamma_o / sqrt(var_o + eps): a negative gamma_o flips the sign of every
incoming synapse of unit o (an E synapse then inhibits). The audit counts violations of W_eff.

``NORM_GAINS`` maps a normalisation type to the per-unit gain it applies (shape (out,)); the unit graph
(:mod:`.graph`) records which normalisation directly follows each weight layer (``UnitGraph.folds``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import sign_mask
from biocircuits.core.layers import weight_shape


def _batchnorm(m: nn.Module) -> Tensor | None:
    if m.weight is None:
        return None
    var = m.running_var if m.running_var is not None else torch.ones_like(m.weight)
    return m.weight.detach() / torch.sqrt(var + m.eps)


def _affine(m: nn.Module) -> Tensor | None:
    """GroupNorm / LayerNorm over the output units: the per-unit weight (the normalisation itself is positive)."""
    weight = getattr(m, "weight", None)
    return None if weight is None or weight.dim() != 1 else weight.detach()


NORM_GAINS: dict[type[nn.Module], Callable[[nn.Module], Tensor | None]] = {
    nn.modules.batchnorm._BatchNorm: _batchnorm,
    nn.GroupNorm: _affine,
    nn.LayerNorm: _affine,
}


def gain_of(module: nn.Module) -> Tensor | None:
    """The per-unit gain of a normalisation module (None for any other module or one without a gain)."""
    for kind, fn in NORM_GAINS.items():
        if isinstance(module, kind):
            return fn(module)
    return None


def norm_gains(model: nn.Module, folds: dict[str, str]) -> dict[str, Tensor]:
    """{layer name: per-output-unit gain} of the normalisations that directly follow weight layers."""
    out = {}
    for layer_name, norm_name in folds.items():
        gain = gain_of(model.get_submodule(norm_name))
        if gain is not None:
            out[layer_name] = gain
    return out


@torch.no_grad()
def effective_count(layer: nn.Module, gain: Tensor | None) -> int:
    """Weights whose effective sign, sign(W[o, ...] * gain_o), breaks Dale (the plain count when ``gain`` is None
    or does not match the layer's outputs)."""
    weight = layer.weight
    mask = sign_mask(layer)
    shape = weight_shape(layer)
    if gain is None or gain.numel() != shape[0]:
        return int(((weight * mask) < 0).sum())
    flip = torch.sign(gain).to(weight).view(-1, *([1] * (len(shape) - 1)))
    return int(((weight * mask * flip) < 0).sum())
