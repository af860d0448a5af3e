"""Models: a registry of small models and every torchvision classifier; a user's own builder by import path
(``"my_pkg.models:build"``) and timm's models (``"timm/<name>"``)."""

from . import alexnet_bn, recurrent, small, torchvision_models  # noqa: F401  (each module registers its models)
from .registry import MODELS, ModelBuilder, build_model, model_builder, register_model

__all__ = ["MODELS", "ModelBuilder", "build_model", "model_builder", "register_model"]
