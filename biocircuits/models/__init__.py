"""Models: a registry of small models and every torchvision classifier."""

from .registry import MODELS, build_model, model_builder, register_model

__all__ = ["MODELS", "build_model", "model_builder", "register_model"]
