"""The model registry: ``mlp``, ``lenet``, ``convnet`` and every torchvision classification model by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torchvision
from torch import nn

from biocircuits.errors import ConfigError, did_you_mean

ModelBuilder = Callable[..., nn.Module]
MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: ``fn(input_shape, num_classes, **kwargs) -> nn.Module`` becomes available by ``name``."""
    def deco(fn: ModelBuilder) -> ModelBuilder:
        MODELS[name] = fn
        return fn
    return deco


def torchvision_names() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def model_builder(name: str) -> ModelBuilder:
    from . import alexnet_bn, small  # noqa: F401
    if name in MODELS:
        return MODELS[name]
    if name in torchvision_names():
        return _torchvision_builder(name)
    choices = [*MODELS, *torchvision_names()]
    raise ConfigError("unknown model", expected="mlp, lenet, convnet or a torchvision classification model",
                      given=name, suggestion=did_you_mean(name, choices))


def _torchvision_builder(name: str) -> ModelBuilder:
    def build(input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        if len(input_shape) != 3 or input_shape[0] != 3:
            raise ConfigError(f"torchvision model {name!r} takes 3-channel images", key="model.name",
                              given=f"input shape {tuple(input_shape)}",
                              suggestion="use mlp, lenet or convnet for this dataset", has_given=True)
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    return build


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    """Build a registered model; a bad keyword argument is a :class:`ConfigError`."""
    builder = model_builder(name)
    try:
        return builder(tuple(input_shape), num_classes, **kwargs)
    except TypeError as err:
        raise ConfigError(f"model {name!r} rejected its kwargs: {err}", key="model.kwargs", given=kwargs) from None
