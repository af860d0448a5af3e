"""Every torchvision classification model, registered under its torchvision name (random weights)."""

from __future__ import annotations

from typing import Any

import torchvision
from torch import nn

from biocircuits.errors import ConfigError

from .registry import ModelBuilder, register_model


def torchvision_builder(name: str) -> ModelBuilder:
    """A builder of torchvision's classifier ``name`` for 3-channel images, with ``num_classes`` outputs."""

    def build(input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ConfigError(
                f"torchvision model {name!r} takes 3-channel images",
                key="model.name",
                given=f"input shape {tuple(input_shape)}",
                suggestion="set data.channels: 3 (and data.resize: 32) to adapt grayscale data, or use "
                "mlp, lenet or convnet",
                has_given=True,
            )
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)

    return build


for _name in sorted(torchvision.models.list_models(module=torchvision.models)):
    register_model(_name)(torchvision_builder(_name))
