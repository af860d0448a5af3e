"""Feedback classes for the layer types of other libraries whose forward computes the same map as a torch layer's
(timm's ``Linear`` re-implements ``nn.Linear.forward`` only to cast for TorchScript), so they are converted although
they override ``forward``. A library is looked up only when it is already imported (a model built from it is)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from torch import nn

from .layers import FeedbackLayer, FeedbackLinear


def _timm() -> dict[type[nn.Module], type[FeedbackLayer]]:
    from timm.layers import Linear  # y = x W^T + b, cast to x's dtype under TorchScript only

    return {Linear: FeedbackLinear}


# module name -> the type mapping it ships (built on first use)
THIRD_PARTY: dict[str, Callable[[], dict[type[nn.Module], type[FeedbackLayer]]]] = {"timm": _timm}


def third_party_classes() -> dict[type[nn.Module], type[FeedbackLayer]]:
    """The type mapping of every library in [`THIRD_PARTY`][biocircuits.feedback.thirdparty.THIRD_PARTY] that is
    imported."""
    found: dict[type[nn.Module], type[FeedbackLayer]] = {}
    for module, build in THIRD_PARTY.items():
        if module in sys.modules:
            found.update(build())
    return found
