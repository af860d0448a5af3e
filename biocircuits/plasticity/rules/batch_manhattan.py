"""Batch Manhattan (Liao et al. 2016): each gradient is replaced by its sign before the optimiser step."""

from __future__ import annotations

import torch
from torch import nn

from biocircuits.core.interface import LayerAttachment, StepState


class BatchManhattan(LayerAttachment):
    """Attached to the model's root module by ``plasticity.update: batch_manhattan``: before each step,
    grad <- sign(grad) for every parameter of the model that the optimiser updates (all at once, foreach)."""

    slot = "plasticity"
    name = "batch_manhattan"
    whole_model = True

    @torch.no_grad()
    def before_step(self, model: nn.Module, step: StepState) -> None:
        grads = [p.grad for p in model.parameters() if id(p) in step.params and p.grad is not None]
        if grads:
            torch._foreach_sign_(grads)
