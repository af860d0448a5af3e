"""The error a network's own feedback pathway delivers to one layer, per sample (what ``biocircuits check-pathway``
and the spiking tutorial feed to a simulated pathway)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["layer_errors"]


def layer_errors(model: nn.Module, layer: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The error dL/dy at ``layer``'s output for each sample, delivered by the network's own feedback rules
    (shape (samples, out); a conv layer's error is taken at the centre output location)."""
    captured: dict[str, Tensor] = {}

    def hook(mod: nn.Module, args: tuple, out: Tensor) -> Tensor:
        captured["y"] = out
        return out.clone()

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y, reduction="sum")
            (delta,) = torch.autograd.grad(loss, captured["y"])
    finally:
        handle.remove()
    if delta.dim() > 2:
        centre = tuple(s // 2 for s in delta.shape[2:])
        delta = delta[(slice(None), slice(None), *centre)]
    return delta.detach()
