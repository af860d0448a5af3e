"""``bc.bind(optimizer, model)``: run the hooks of everything attached to the model's layers around each step of
any torch optimiser.

Before ``step``: the attachments' ``before_step`` hooks (gradient transforms, then sign-of-gradient updates), then
one snapshot of the trainable weights that an ``after_step`` hook needs. After ``step``: plasticity, Dale
enforcement, feedback refresh — each fused group over all its layers at once. Under DDP the hooks run after the
gradient all-reduce, so every rank applies the same transform."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from biocircuits.errors import ConfigError

from .interface import SLOT_ORDER, LayerAttachment, StepState, attached_modules
from .layers import trainable_weight, unwrap

Group = tuple[type[LayerAttachment], list[tuple[nn.Module, LayerAttachment]]]


def _groups(members: Sequence[tuple[nn.Module, LayerAttachment]], hook: str) -> list[Group]:
    """Members whose class acts at ``hook``, grouped by fused group, ordered by slot, class order, first seen."""
    groups: dict[type[LayerAttachment], list[tuple[nn.Module, LayerAttachment]]] = {}
    for layer, att in members:
        if type(att).acts(hook):
            groups.setdefault(type(att).fused_group(), []).append((layer, att))
    return sorted(groups.items(), key=lambda g: (SLOT_ORDER.get(g[0].slot, 99), g[0].order))


def _owned(layer: nn.Module, params: set[int]) -> bool:
    """True when the optimiser updates a tensor that makes the layer's weight (so its attachments act at this
    optimiser): the plain weight, or under a parametrisation any of its tensors -- the trainable weight and, for
    DANN, W_IE and W_EI beside W_EE (an optimiser of the interneurons alone must still keep them >= 0)."""
    if "parametrizations" in layer._modules:
        return any(id(p) in params for p in layer._modules["parametrizations"].parameters())
    weight = layer._parameters.get("weight")
    if weight is None and isinstance(getattr(type(layer), "weight", None), property):
        weight = layer.weight  # a view of another module's parameter (a converted RNN's matrix)
    return weight is not None and id(weight) in params


class Binding:
    """The hooks [`bind`][biocircuits.core.binding.bind] installs; ``remove()`` takes them off again (``bc.remove`` does
    so too)."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
        self.model = model
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        members = [
            (m, att) for _, m, held in attached_modules(model) for att in held if att.whole_model or _owned(m, params)
        ]
        self.before = _groups(members, "before_step")
        self.after = _groups(members, "after_step")
        snap = {id(m): m for _, ms in self.after for m, att in ms if att.needs_snapshot}
        self.snapshot_layers = list(snap.values())
        self.step = StepState(params=params, groups=optimizer.param_groups)
        self.handles = [
            optimizer.register_step_pre_hook(self.pre_step),
            optimizer.register_step_post_hook(self.post_step),
        ]

    @torch.no_grad()
    def pre_step(self, optimizer, args, kwargs) -> None:
        for group, members in self.before:
            group.before_step_group(members, self.step)
        if self.snapshot_layers:
            weights = [trainable_weight(m).detach() for m in self.snapshot_layers]
            saved = [self._buffer(m, w) for m, w in zip(self.snapshot_layers, weights, strict=True)]
            torch._foreach_copy_(saved, weights)

    def _buffer(self, layer: nn.Module, weight: Tensor) -> Tensor:
        """The snapshot buffer of ``layer`` (kept across steps: no allocation per step)."""
        held = self.step.before.get(id(layer))
        if held is None or held.shape != weight.shape or held.device != weight.device or held.dtype != weight.dtype:
            held = self.step.before[id(layer)] = torch.empty_like(weight)
        return held

    @torch.no_grad()
    def post_step(self, optimizer, args, kwargs) -> None:
        for group, members in self.after:
            group.after_step_group(members, self.step)

    def remove(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        if optimizer is not None and getattr(optimizer, "_biocircuits_binding", None) is self:
            del optimizer._biocircuits_binding


def bind(optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
    """Install the hooks of ``model``'s attachments (plasticity, Dale enforcement, error transforms) on
    ``optimizer``; returns it. The model must have been converted with [`biocircuits.apply`][biocircuits.apply.apply]
    (DDP- and compile-wrapped models are unwrapped)."""
    module = unwrap(model)
    if getattr(optimizer, "_biocircuits_binding", None) is not None:
        raise ValueError("this optimizer is already bound; bind each optimizer once")
    state = module.__dict__.get("biocircuits")
    if state is None:
        raise ConfigError(
            "model has not been converted",
            given=type(module).__name__,
            suggestion="call bc.apply(model, spec) first",
            has_given=True,
        )
    binding = Binding(optimizer, module)
    optimizer._biocircuits_binding = binding
    state.bindings.append((binding, optimizer))
    return optimizer
