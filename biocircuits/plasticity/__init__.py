"""Cell-type and region-specific plasticity, installed on an optimiser by :func:`bind`."""

from .bind import Binding, bind
from .rules import LayerPlasticity, plan

__all__ = ["Binding", "LayerPlasticity", "bind", "plan"]
