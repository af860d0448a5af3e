"""The plasticity-rule base class and registry: rules that reshape the optimiser's update of the weights they match.

Every rule acts on the update dW = W_after - W_before of the trainable weight (any optimiser, momentum and weight
decay included) of the synapse class it matches (presynaptic ``population`` and postsynaptic ``post`` type, each
``E``, ``I`` or ``any``: E->E, E->I, I->E, I->I), in spec order:

    dW <- where(mask, rule.reshape(dW, g), dW),    then  W <- W_before + dW

with g the direction in which the trainable tensor grows |W| (the Dale enforcer's growth sign, else sign(W_before)).
A rule whose update is a fixed factor (``static_factor``) is fused: the factors of all of a layer's rules become
one broadcastable tensor F, and every such layer is updated at once with foreach ops, W <- W_before + F * dW.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import cell_types, synapse_mask
from biocircuits.core.foreach import mul_
from biocircuits.core.interface import LayerAttachment, StepState, attachments_of
from biocircuits.core.layers import trainable_weight
from biocircuits.core.registry import Registry


class PlasticityRule(LayerAttachment):
    """A row of ``plasticity.rules``: subclasses set ``name`` and ``Options`` and implement
    [`reshape`][biocircuits.plasticity.rules.base.PlasticityRule.reshape] (and
    [`static_factor`][biocircuits.plasticity.rules.base.PlasticityRule.static_factor] when the reshaping is a fixed
    factor)."""

    slot = "plasticity"
    needs_snapshot = True

    def __init__(
        self,
        options: Any = None,
        seed: int = 0,
        population: str = "any",
        post: str = "any",
        post_sign: Tensor | None = None,
        target: str = "weight",
    ) -> None:
        super().__init__(options, seed)
        self.population = population  # presynaptic type
        self.post = post  # postsynaptic type, with the type of each output unit (shape (out,))
        self.post_sign = post_sign
        # the tensor acted on: the layer's trainable weight, or another parameter of the layer, all of one synapse
        # class and non-negative (a DANN layer's parametrizations.weight.0.weight_ie / weight_ei)
        self.target = target
        self._before: Tensor | None = None
        self._factor_key: tuple | None = None  # the fused factor F (cached on a layer's first rule) and its key
        self._factor: Tensor | None = None

    def mask(self, layer: nn.Module) -> Tensor | None:
        """Bool mask (broadcastable to the weight) of the synapses this rule acts on: presynaptic ``population``
        onto postsynaptic ``post`` units; None for all."""
        if self.target != "weight":
            return None
        return synapse_mask(layer, self.population, self.post, self.post_sign)

    def reshape(self, delta: Tensor, grows: Tensor | float) -> Tensor:
        """The update of the matched weights given their update ``delta`` and growth direction ``grows``."""
        raise NotImplementedError

    def static_factor(self) -> float | None:
        """F when [`reshape`][biocircuits.plasticity.rules.base.PlasticityRule.reshape] is ``delta * F`` for a fixed F,
        else None."""
        return None

    @classmethod
    def changes_nothing(cls, options: Any) -> bool:
        """True when a rule with these options leaves every update as it is (it is then not attached)."""
        return False

    @classmethod
    def fused_group(cls) -> type[LayerAttachment]:
        return PlasticityRule  # all plasticity rules run in one pass, in spec order per layer

    @classmethod
    @torch.no_grad()
    def before_step_group(cls, members: Sequence[tuple[nn.Module, LayerAttachment]], step: StepState) -> None:
        """Snapshot the tensors other than the trainable weight that rules act on (the binding snapshots that)."""
        for layer, att in members:
            if att.target != "weight":
                param = layer.get_parameter(att.target)
                if att._before is None or att._before.shape != param.shape or att._before.device != param.device:
                    att._before = torch.empty_like(param)
                att._before.copy_(param)

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members: Sequence[tuple[nn.Module, LayerAttachment]], step: StepState) -> None:
        layers: dict[tuple[int, str], tuple[nn.Module, list[PlasticityRule]]] = {}
        for layer, att in members:
            layers.setdefault((id(layer), att.target), (layer, []))[1].append(att)
        fused: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
        for (_, target), (layer, rules) in layers.items():
            if target == "weight":
                weight, before, grows = trainable_weight(layer), step.weight_before(layer), None
            else:  # a non-negative tensor: |w| grows with w
                weight, before, grows = layer.get_parameter(target), rules[0]._before, 1.0
            if all(r.static_factor() is not None for r in rules):
                fused[0].append(weight), fused[1].append(before), fused[2].append(_factor(layer, rules, weight))
            else:
                _reshape_(layer, rules, weight, before, grows)
        if fused[0]:
            torch._foreach_sub_(fused[0], fused[1])
            mul_(fused[0], fused[2])
            torch._foreach_add_(fused[0], fused[1])


def growth_sign(layer: nn.Module, before: Tensor) -> Tensor | float:
    """The direction in which the trainable tensor grows |W|: the Dale attachment's (its ``growth_sign``), else
    sign(W_before)."""
    held = attachments_of(layer)
    dale = held.dale if held is not None else None
    return dale.growth_sign(layer, before) if dale is not None else torch.sign(before)


def _factor(layer: nn.Module, rules: list[PlasticityRule], like: Tensor) -> Tensor:
    """F = prod over rules of where(mask, f_rule, 1), broadcastable to the weight; cached on the first rule."""
    sign = cell_types(layer)
    key = (like.device, like.dtype, None if sign is None else (sign.data_ptr(), sign._version))
    head = rules[0]
    if head._factor_key != key:
        factor = torch.ones((), dtype=like.dtype, device=like.device)
        for rule in rules:
            mask = rule.mask(layer)
            f = torch.tensor(rule.static_factor(), dtype=like.dtype, device=like.device)
            factor = factor * f if mask is None else torch.where(mask.to(like.device), factor * f, factor)
        head._factor, head._factor_key = factor, key
    return head._factor


def _reshape_(
    layer: nn.Module, rules: list[PlasticityRule], weight: Tensor, before: Tensor, grows: Tensor | float | None = None
) -> None:
    grows = growth_sign(layer, before) if grows is None else grows
    delta = weight - before
    for rule in rules:
        mask = rule.mask(layer)
        changed = rule.reshape(delta, grows)
        delta = changed if mask is None else torch.where(mask.to(delta.device), changed, delta)
    weight.copy_(before + delta)


PLASTICITY: Registry[type[PlasticityRule]] = Registry("plasticity rule")
