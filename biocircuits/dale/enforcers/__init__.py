"""Dale enforcers: one registered class each (``ENFORCERS``), named by ``dale.enforce`` in a spec."""

from .base import ENFORCERS, DaleEnforcer
from .exp_gradient import ExpGradient
from .project import Project
from .reparametrise import Abs, Reparametrised, SignedMagnitude, Softplus

__all__ = [
    "ENFORCERS",
    "Abs",
    "DaleEnforcer",
    "ExpGradient",
    "Project",
    "Reparametrised",
    "SignedMagnitude",
    "Softplus",
]
