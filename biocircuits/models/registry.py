"""The model registry: a new model is one builder ``fn(input_shape, num_classes, **kwargs) -> nn.Module`` with
``@register_model("name")`` (that is, ``@MODELS.register("name")``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from biocircuits.core import Registry
from biocircuits.errors import ConfigError

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
register_model = MODELS.register


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    """Build a registered model; a bad keyword argument is a [`ConfigError`][biocircuits.errors.ConfigError]."""
    builder = MODELS.get(name)
    try:
        return builder(tuple(input_shape), num_classes, **kwargs)
    except TypeError as err:
        raise ConfigError(f"model {name!r} rejected its kwargs: {err}", key="model.kwargs", given=kwargs) from None
