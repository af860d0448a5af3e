"""Effective (normalisation-folded) signs: a per-unit gain applied after a layer multiplies every synapse onto
that unit. BatchNorm in eval mode computes y_o = gamma_o (z_o - mu_o) / sqrt(var_o + eps) + beta_o, so the effective
weights are W_eff[o, ...] = W[o, ...] * gamma_o / sqrt(var_o + eps): a negative gamma_o flips the sign of every
incoming synapse of unit o (an E synapse then inhibits). The audit counts violations of W_eff.

That fold is exact for BatchNorm in evaluation mode only (a per-unit affine map). LayerNorm and GroupNorm centre
over units, y = gamma (z - mean(z)) / sigma(z) + beta, so dy/dx = (gamma / sigma)(I - 1 1^T / n - z_hat z_hat^T / n) W
mixes the units' weights: with gamma >= 0 an effective weight can still break the law (which ones depends on the
input). Their gain's sign is folded like BatchNorm's, and the audit counts the weights onto the units they centre
apart, as not guaranteed ([`NormReadings`][biocircuits.dale.effective.NormReadings] ``centred``). BatchNorm in training
mode (batch statistics, each sample's output depending on the others') is not what the fold describes.

``NORM_GAINS`` maps a normalisation type to the per-unit gain it applies (shape (out,)); the unit graph
([`graph`][biocircuits.dale.graph]) records the units each normalisation reads (``UnitGraph.norms``), wherever it sits,
and which one directly follows each weight layer (``UnitGraph.folds``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import sign_mask
from biocircuits.core.layers import weight_shape

from .graph import UnitGraph


def _batchnorm(m: nn.Module) -> Tensor | None:
    if m.weight is None:
        return None
    var = m.running_var if m.running_var is not None else torch.ones_like(m.weight)
    return m.weight.detach() / torch.sqrt(var + m.eps)


def _affine(m: nn.Module) -> Tensor | None:
    """GroupNorm / LayerNorm over the output units: the per-unit weight gamma. Only its sign is meaningful: the
    centring before it mixes units (the module docstring), so gamma >= 0 does not make the effective weights obey
    the law."""
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


CENTRING_NORMS = (nn.GroupNorm, nn.LayerNorm)


@dataclass
class NormReadings:
    """What the normalisations reading each weight layer's output units do to its synapses (per layer name):
    ``flips``: per-output-unit sign (-1 when any normalisation reading the unit has a negative gain on it, 0 when
    every one has gain 0, else +1); ``negative_in``: the norms with a negative gain on its units; ``centred``:
    per-output-unit mask of the units a LayerNorm or GroupNorm reads, whose centring makes the effective sign of
    every synapse onto them depend on the other units' weights and the input; ``centred_in``: those norms."""

    flips: dict[str, Tensor] = field(default_factory=dict)
    negative_in: dict[str, list[str]] = field(default_factory=dict)
    centred: dict[str, Tensor] = field(default_factory=dict)
    centred_in: dict[str, list[str]] = field(default_factory=dict)


def _names(by_root: dict[int, set[str]], roots: Tensor) -> list[str]:
    return sorted(set().union(*(by_root.get(r, set()) for r in roots.tolist())))


def norm_readings(model: nn.Module, units: UnitGraph) -> NormReadings:
    """[`NormReadings`][biocircuits.dale.effective.NormReadings] from every normalisation the unit graph saw
    (``units.norms``), wherever it sits: right after the layer, after a concatenation (DenseNet's ``norm1``, transition
    norms, ``norm5``) or an addition (units merged by an addition share their root, so their flags)."""
    n = int(units.root.numel())
    neg, pos, seen, centred = (torch.zeros(n, dtype=torch.bool) for _ in range(4))
    negative_in: dict[int, set[str]] = {}
    centred_in: dict[int, set[str]] = {}
    for norm_name, ids in units.norms.items():
        module = model.get_submodule(norm_name)
        roots = units.root[ids]
        if isinstance(module, CENTRING_NORMS):
            centred[roots] = True
            for root in roots.tolist():
                centred_in.setdefault(root, set()).add(norm_name)
        gain = gain_of(module)
        if gain is None or gain.numel() != ids.numel():
            continue
        sign = torch.sign(gain.detach().cpu())
        seen[roots] = True
        neg[roots[sign < 0]] = True
        pos[roots[sign > 0]] = True
        for root in roots[sign < 0].tolist():
            negative_in.setdefault(root, set()).add(norm_name)
    out = NormReadings()
    for layer_name, ids in units.outputs.items():
        roots = units.root[ids]
        out.flips[layer_name] = torch.where(neg[roots], -1.0, torch.where(pos[roots] | ~seen[roots], 1.0, 0.0))
        out.centred[layer_name] = centred[roots]
        if names := _names(negative_in, roots):
            out.negative_in[layer_name] = names
        if names := _names(centred_in, roots):
            out.centred_in[layer_name] = names
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
