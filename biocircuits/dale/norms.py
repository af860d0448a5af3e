"""Normalisation layers under Dale: a negative BatchNorm gamma flips the sign of every synapse onto its unit.

A BatchNorm channel i after a weight layer W computes, in evaluation mode,

    y_i = gamma_i (sum_j W_ij x_j - mu_i) / sqrt(var_i + eps) + beta_i,

so the effective (BN-folded) weight of presynaptic unit j onto i is W_eff_ij = gamma_i W_ij / sqrt(var_i + eps).
Dale's law holds for W (s_j W_ij >= 0), but it holds for W_eff only while gamma_i >= 0: a negative gamma_i
turns every E synapse onto unit i inhibitory and every I synapse excitatory. ``dale.norm_gamma`` chooses:

- ``free`` (the default, today's behaviour): gamma is left to the optimiser (no attachment);
- ``nonnegative``: [`NonnegativeGamma`][biocircuits.dale.norms.NonnegativeGamma] is attached to every affine
  normalisation layer (BatchNorm, GroupNorm, LayerNorm, affine InstanceNorm) and projects gamma after each optimiser
  step, gamma <- max(gamma, 0), the Euclidean projection onto the non-negative orthant (the ``project`` enforcer's
  rule for an all-excitatory row). Then, for BatchNorm in evaluation mode, s_j W_eff_ij =
  (gamma_i / sqrt(var_i + eps)) s_j W_ij >= 0: the effective weights obey the law, not just W. Attaching also
  clamps a negative gamma already present.

What holds for the other norms: LayerNorm and GroupNorm centre over units, y = gamma (z - mean(z)) / sigma(z) +
beta, so the effective weights are (gamma / sigma)(I - 1 1^T / n - z_hat z_hat^T / n) W: with gamma >= 0 they
still have entries of the wrong sign (in a 12 -> 10 linear + LayerNorm, about half of them), depending on the
input. ``nonnegative`` removes only the flip by a negative gamma there; ``bc.audit`` counts the weights onto units
a LayerNorm or GroupNorm reads as ``not_guaranteed``. BatchNorm in training mode normalises with the batch's
statistics (each sample's output depends on the others'), which the fold with running statistics does not
describe.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from biocircuits.core.interface import LayerAttachment, StepState

from .slot import DALE, DaleAttachment

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every normalisation layer of ``model`` with a learnable scale (gamma)."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, NORM_TYPES) and isinstance(getattr(m, "weight", None), nn.Parameter)
    ]


@DALE.register
class NonnegativeGamma(DaleAttachment):
    """``dale.norm_gamma: nonnegative``, attached to every affine normalisation layer: gamma <- max(gamma, 0) at
    attach time and after every optimiser step (one foreach clamp over all the model's norm layers)."""

    name = "nonnegative_gamma"
    spec_key = "norm_gamma"
    choice = "nonnegative"

    @classmethod
    def targets(cls, model: nn.Module, constrained: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
        return norm_layers(model)

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        with torch.no_grad():
            layer.weight.clamp_(min=0.0)

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members: Sequence[tuple[nn.Module, LayerAttachment]], step: StepState) -> None:
        torch._foreach_clamp_min_([layer.weight for layer, _ in members], 0.0)


def effective_weight(weight: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """The BN-folded weight W_eff_ij = gamma_i W_ij / sqrt(running_var_i + eps) of a layer followed by the
    BatchNorm ``norm`` (evaluation-mode statistics), shaped like ``weight``."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return weight * scale.view(-1, *([1] * (weight.dim() - 1)))
