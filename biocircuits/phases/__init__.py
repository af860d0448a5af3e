"""Phase-separated learning: forward, backward (error through the feedback pathway) and update phases,
and the registered transforms of the error pathway."""

from .attach import attach_transforms
from .step import PhaseCallback, PhasedStep, StepContext
from .transforms import TRANSFORMS, ErrorTransform, quantize

__all__ = [
    "TRANSFORMS",
    "ErrorTransform",
    "PhaseCallback",
    "PhasedStep",
    "StepContext",
    "attach_transforms",
    "quantize",
]
