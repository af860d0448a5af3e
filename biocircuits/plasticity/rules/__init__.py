"""Plasticity rules: one registered class each (``PLASTICITY``), named by ``rule:`` in a ``plasticity.rules`` row."""

from .base import PLASTICITY, PlasticityRule, growth_sign
from .batch_manhattan import BatchManhattan
from .update import DIRECTIONS, Update

__all__ = ["DIRECTIONS", "PLASTICITY", "BatchManhattan", "PlasticityRule", "Update", "growth_sign"]
