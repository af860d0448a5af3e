"""``model.name: timm/<name>``: any model of timm (``pip install timm``), with random weights (start from trained
ones with ``model.checkpoint``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from biocircuits.errors import ConfigError, did_you_mean

from .registry import ModelBuilder


def timm_builder(name: str) -> ModelBuilder:
    """A builder of timm's ``name``: ``timm.create_model(name, num_classes=..., in_chans=C, **kwargs)`` for inputs
    of shape (C, H, W) (a ViT's ``img_size`` is a kwarg: set it to H for inputs that are not timm's default)."""
    try:
        import timm
    except ImportError:
        raise ConfigError(
            "timm is not installed", key="model.name", given=f"timm/{name}", suggestion="pip install timm"
        ) from None
    known = timm.list_models()
    if name not in known:
        raise ConfigError(
            "unknown timm model",
            key="model.name",
            given=f"timm/{name}",
            expected="a name from timm.list_models()",
            suggestion=did_you_mean(name, known) or "see timm.list_models('*pattern*')",
        )

    def build(input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=input_shape[0], **kwargs)

    return build
