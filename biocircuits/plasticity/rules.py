"""Cell-type and region-specific plasticity: which weights learn how fast, and in which direction.

Every rule acts on the optimiser's update dW = W_after - W_before of the weights it matches (any optimiser,
momentum and weight decay included), so ``lr_scale`` scales the actual update exactly:

    dW <- lr_scale * dW;  potentiation_only: dW <- 0 where dW * s < 0;  depression_only: dW <- 0 where dW * s > 0

with s the direction in which |W| grows (the Dale sign, or sign(W_before)). ``frozen`` weights are restored
bit-identically. ``batch_manhattan`` (Liao et al. 2016) replaces each gradient by its sign before the step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from biocircuits.config.constraints import PlasticityRule, PlasticitySpec
from biocircuits.dale.enforce import latent_sign
from biocircuits.dale.populations import population_mask
from biocircuits.feedback.convert import match_any


def trainable_weight(layer: nn.Module) -> Tensor:
    """The tensor the optimiser updates: ``weight``, or the latent of a Dale reparametrisation."""
    parametrizations = getattr(layer, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return parametrizations.weight.original
    return layer.weight


def _scale(delta: Tensor, rule: PlasticityRule, grows: Tensor | float) -> Tensor:
    return delta if rule.lr_scale == 1.0 else delta * rule.lr_scale


def _potentiation_only(delta: Tensor, rule: PlasticityRule, grows: Tensor | float) -> Tensor:
    return torch.where(delta * grows < 0, torch.zeros_like(delta), delta)


def _depression_only(delta: Tensor, rule: PlasticityRule, grows: Tensor | float) -> Tensor:
    return torch.where(delta * grows > 0, torch.zeros_like(delta), delta)


DIRECTIONS: dict[str, Callable[[Tensor, PlasticityRule, Tensor | float], Tensor]] = {
    "both": lambda delta, rule, grows: delta,
    "potentiation_only": _potentiation_only,
    "depression_only": _depression_only,
}


@dataclass
class LayerPlasticity:
    """The rules matching one layer, with their population masks."""

    name: str
    layer: nn.Module
    rules: list[tuple[PlasticityRule, Tensor | None]]

    @torch.no_grad()
    def apply_(self, weight: Tensor, before: Tensor) -> None:
        """Rewrite the step just taken on ``weight`` (whose value before the step was ``before``)."""
        grows = latent_sign(self.layer, before)
        delta = weight.sub_(before)  # weight now holds the update dW
        frozen = None
        for rule, mask in self.rules:
            changed = DIRECTIONS[rule.direction](_scale(delta, rule, grows), rule, grows)
            delta = changed if mask is None else torch.where(mask, changed, delta)
            if rule.frozen:
                full = torch.ones_like(delta, dtype=torch.bool) if mask is None else mask.expand_as(delta)
                frozen = full if frozen is None else frozen | full
        if frozen is None:
            weight.copy_(delta).add_(before)
        else:
            weight.copy_(torch.where(frozen, before, delta + before))


def plan(model: nn.Module, spec: PlasticitySpec, layers: list[tuple[str, nn.Module]]) -> list[LayerPlasticity]:
    """For each weight layer, the plasticity rules (in spec order) whose layer glob matches its name.
    A rule that changes nothing (lr_scale 1, both directions, not frozen) is dropped."""
    out = []
    for name, layer in layers:
        matched = []
        for rule in spec.rules:
            if not match_any(name, [rule.match.layers]):
                continue
            if rule.lr_scale == 1.0 and rule.direction == "both" and not rule.frozen:
                continue
            if rule.match.population != "any" and getattr(layer, "dale_sign", None) is None:
                continue  # populations exist only in Dale-constrained layers
            matched.append((rule, population_mask(layer, rule.match.population)))
        if matched:
            out.append(LayerPlasticity(name, layer, matched))
    return out
