"""Pydantic schemas and YAML loading for constraint specs and experiments."""

from .constraints import Constraints, DaleSpec, FeedbackSpec, PhasesSpec, PlasticitySpec

__all__ = ["Constraints", "DaleSpec", "FeedbackSpec", "PhasesSpec", "PlasticitySpec"]
