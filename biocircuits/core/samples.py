"""The sample input a model is run on to follow its graph (batch 1): the shape given, or guessed from the first
weight layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import weight_layers

# spatial sizes tried, in order, for a model whose first weight layer is a conv (common image sizes first)
GUESSED_SIZES = (32, 28, 64, 224, 96, 299, *[s for s in range(1, 65) if s not in (28, 32, 64)])


def sample_input(model: nn.Module, shape: list[int] | None) -> list[Tensor]:
    """Candidate inputs (batch 1) to run the graph on: ``shape`` when given, else guessed from the first weight
    layer (a linear layer's width, or a conv's channels at each of
    [`GUESSED_SIZES`][biocircuits.core.samples.GUESSED_SIZES] along every spatial dim); on the device and in the
    floating dtype of the model's first parameter."""
    param = next(model.parameters(), None)
    kw = {
        "device": param.device if param is not None else "cpu",
        "dtype": param.dtype if param is not None and param.is_floating_point() else torch.float32,
    }
    if shape is not None:
        return [torch.rand(1, *shape, **kw)]
    layers = weight_layers(model)
    if not layers:
        return []
    first = layers[0][1]
    if isinstance(first, nn.Linear):
        return [torch.rand(1, first.in_features, **kw)]
    nd = first.weight.dim() - 2
    return [torch.rand(1, first.in_channels, *([s] * nd), **kw) for s in GUESSED_SIZES]
