"""Cell-type and region-specific plasticity: registered rules that reshape the optimiser's update."""

from .attach import attach_plasticity
from .rules import PLASTICITY, BatchManhattan, PlasticityRule, Update

__all__ = ["PLASTICITY", "BatchManhattan", "PlasticityRule", "Update", "attach_plasticity"]
