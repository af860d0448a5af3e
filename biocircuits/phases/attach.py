"""Attaching the transforms a ``phases:`` section asks for to a network's converted layers (and its root)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from biocircuits.core.interface import attach

from .transforms import TRANSFORMS
from .transforms.streams import StreamClock, StreamState


def attach_transforms(
    model: nn.Module, layers: Sequence[tuple[str, nn.Module]], transforms: dict[str, Any], seed: int = 0
) -> int:
    """Attach each active transform of ``transforms`` ({registered name: options mapping or options model}) to
    every layer of ``layers`` (a ``whole_model`` transform to ``model`` itself; an option may pick the class that
    carries it out, [`variant`][biocircuits.phases.transforms.base.ErrorTransform.variant]), in the transforms'
    ``order``, and a `StreamClock` to ``model`` when one keeps per-stream state; returns how many were attached
    per layer. A transform whose options turn it off attaches nothing, so a zero setting leaves the model exactly
    as without."""
    chosen = []
    for name, options in transforms.items():
        cls = TRANSFORMS.get(name)
        probe = cls(cls.expand(options) if not hasattr(options, "model_dump") else options, seed)
        if cls.active(probe.options):
            chosen.append((cls.variant(probe.options), probe.options))
    chosen.sort(key=lambda item: item[0].order)
    if any(issubclass(cls, StreamState) for cls, _ in chosen):
        attach(model, StreamClock(), "")
    for cls, options in chosen:
        if cls.whole_model:
            attach(model, cls(options, seed), "")
    for name, layer in layers:
        for cls, options in chosen:
            if not cls.whole_model:
                attach(layer, cls(options, seed), name)
    return len(chosen)
