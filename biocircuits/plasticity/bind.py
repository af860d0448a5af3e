"""``bc.bind(optimizer, model)``: plasticity and Dale as optimiser hooks, for any torch optimiser.

Before ``step``: gradient transforms (``batch_manhattan``) and a snapshot of the weights whose update is
reshaped afterwards. After ``step``: plasticity rules, then exponentiated-gradient and projection for Dale.
Under DDP the hooks run after the gradient all-reduce, so every rank applies the same transform."""

from __future__ import annotations

import torch
from torch import nn

from biocircuits.dale.enforce import exp_gradient_, project_, projection_bounds
from biocircuits.dale.populations import sign_mask

from .rules import LayerPlasticity, plan, trainable_weight


class Binding:
    """The hooks :func:`bind` installs; ``remove()`` takes them off again."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
        from biocircuits.apply import constraints_of
        state = constraints_of(model)
        self.spec = state.spec
        self.gradient_phases = state.gradient_phases
        layers = state.weight_layers
        self.plasticity: list[LayerPlasticity] = plan(model, self.spec.plasticity, layers)
        self.projected = [(n, m) for n, m in layers if getattr(m, "dale_enforce", None) == "project"]
        self.exp_gradient = [(n, m) for n, m in layers if getattr(m, "dale_enforce", None) == "exp_gradient"]
        self.bounds = {n: projection_bounds(sign_mask(m).to(m.weight)) for n, m in self.projected}
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        self.manhattan = self.spec.plasticity.update == "batch_manhattan"
        self.params = [p for p in model.parameters() if id(p) in owned]
        self._before: dict[str, torch.Tensor] = {}
        snap = {lp.name: lp.layer for lp in self.plasticity} | dict(self.exp_gradient)
        self.snapshot_layers = list(snap.items())
        self.handles = [optimizer.register_step_pre_hook(self.pre_step),
                        optimizer.register_step_post_hook(self.post_step)]

    @torch.no_grad()
    def pre_step(self, optimizer, args, kwargs) -> None:
        if self.gradient_phases is not None:
            self.gradient_phases()
        if self.manhattan:
            for p in self.params:
                if p.grad is not None:
                    p.grad.copy_(torch.sign(p.grad))
        for name, layer in self.snapshot_layers:  # buffers reused across steps: no allocation per step
            weight = trainable_weight(layer).detach()
            if name not in self._before or self._before[name].shape != weight.shape:
                self._before[name] = torch.empty_like(weight)
            self._before[name].copy_(weight)

    @torch.no_grad()
    def post_step(self, optimizer, args, kwargs) -> None:
        for lp in self.plasticity:
            lp.apply_(trainable_weight(lp.layer), self._before[lp.name])
        for name, layer in self.exp_gradient:
            exp_gradient_(layer.weight, self._before[name])
        for name, layer in self.projected:
            bounds = self.bounds[name]
            if bounds[0].device != layer.weight.device or bounds[0].dtype != layer.weight.dtype:
                bounds = self.bounds[name] = (bounds[0].to(layer.weight), bounds[1].to(layer.weight))
            project_(layer.weight, bounds)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def bind(optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
    """Install the model's plasticity rules and Dale enforcement as hooks on ``optimizer``; returns it.

    The model must have been converted with :func:`biocircuits.apply` (DDP-wrapped models are unwrapped)."""
    module = getattr(model, "module", model)
    if getattr(optimizer, "_biocircuits_binding", None) is not None:
        raise ValueError("this optimizer is already bound; bind each optimizer once")
    optimizer._biocircuits_binding = Binding(optimizer, module)
    return optimizer
