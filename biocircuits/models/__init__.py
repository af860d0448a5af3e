"""Models: a registry of small models and every torchvision classifier."""

from . import alexnet_bn, recurrent, small, torchvision_models  # noqa: F401  (each module registers its models)
from .registry import MODELS, ModelBuilder, build_model, register_model

__all__ = ["MODELS", "ModelBuilder", "build_model", "register_model"]
