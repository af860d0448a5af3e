"""Error-pathway transforms: one registered class each (``TRANSFORMS``), named by a key of ``phases:`` (or, for
the stream-state ones, set through ``backward_state``; see
[`biocircuits.phases.transforms.streams`][biocircuits.phases.transforms.streams])."""

from .base import TRANSFORMS, ErrorPathway, ErrorTransform
from .delay import ErrorDelay
from .filtering import ErrorFilter, OutputErrorFilter, mean_lag
from .interference import Interference
from .late import LateError
from .noise import ErrorNoise
from .quantization import ErrorQuantization, quantize
from .trace import EligibilityTrace, decay_from_tau

__all__ = [
    "TRANSFORMS",
    "EligibilityTrace",
    "ErrorDelay",
    "ErrorFilter",
    "ErrorNoise",
    "ErrorPathway",
    "ErrorQuantization",
    "ErrorTransform",
    "Interference",
    "LateError",
    "OutputErrorFilter",
    "decay_from_tau",
    "mean_lag",
    "quantize",
]
