"""Optimiser (with a separate lr for the last layer) and the per-step learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from biocircuits.config.experiment import OptimSpec, ScheduleSpec
from biocircuits.core import weight_layers
from biocircuits.errors import ConfigError


def last_layer_name(model: nn.Module, spec: OptimSpec) -> str:
    """The layer trained at ``last_layer_lr``: ``spec.last_layer`` or the last Linear/Conv in module order."""
    names = [n for n, _ in weight_layers(model)]
    if spec.last_layer is not None:
        if spec.last_layer not in names:
            raise ConfigError(
                "optim.last_layer names no Linear/Conv layer",
                key="optim.last_layer",
                given=spec.last_layer,
                suggestion="layers: " + ", ".join(names[-5:]),
            )
        return spec.last_layer
    return names[-1]


def build_optimizer(model: nn.Module, spec: OptimSpec) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov), Adam or AdamW over ``model``'s parameters; one group, or two when
    ``last_layer_lr`` is set (the last layer's parameters at that rate)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict] = [{"params": params}]
    if spec.last_layer_lr is not None:
        last = dict(model.named_modules())[last_layer_name(model, spec)]
        last_ids = {id(p) for p in last.parameters()}
        groups = [
            {"params": [p for p in params if id(p) not in last_ids]},
            {"params": [p for p in params if id(p) in last_ids], "lr": spec.last_layer_lr},
        ]
    if spec.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov and spec.momentum > 0,
            weight_decay=spec.weight_decay,
        )
    cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


def lr_factor(step: int, spec: ScheduleSpec, steps_per_epoch: int, total_steps: int, base_lr: float) -> float:
    """Multiplier of the base lr at optimiser step ``step`` (0-based): linear warmup, then the schedule."""
    epoch = step / max(1, steps_per_epoch)
    warm = spec.warmup_epochs * steps_per_epoch
    if warm > 0 and step < warm:
        return (step + 1) / warm
    if spec.name == "step":
        return spec.gamma ** math.floor(epoch / spec.step_size)
    if spec.name == "multistep":
        return spec.gamma ** sum(epoch >= m for m in spec.milestones)
    if spec.name == "cosine":
        span = max(1.0, total_steps - warm)
        progress = min(1.0, (step - warm) / span)
        floor = spec.min_lr / base_lr if base_lr > 0 else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer, spec: ScheduleSpec, steps_per_epoch: int, total_steps: int, base_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per optimiser step (its state_dict holds only the step count)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, spec, steps_per_epoch, total_steps, base_lr)
    )
