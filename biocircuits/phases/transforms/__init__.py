"""Error-pathway transforms: one registered class each (``TRANSFORMS``), named by a key of ``phases:``."""

from .base import TRANSFORMS, ErrorPathway, ErrorTransform
from .delay import ErrorDelay
from .eligibility import EligibilityDecay
from .noise import ErrorNoise
from .quantization import ErrorQuantization, quantize

__all__ = ["TRANSFORMS", "EligibilityDecay", "ErrorDelay", "ErrorNoise", "ErrorPathway", "ErrorQuantization",
           "ErrorTransform", "quantize"]
