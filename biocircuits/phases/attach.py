"""Attaching the transforms a ``phases:`` section asks for to a network's converted layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from biocircuits.core.interface import attach

from .transforms import TRANSFORMS


def attach_transforms(layers: Sequence[tuple[str, nn.Module]], transforms: dict[str, Any], seed: int = 0) -> int:
    """Attach each active transform of ``transforms`` ({registered name: options mapping or options model}) to
    every layer of ``layers``, in the transforms' ``order``; returns how many were attached per layer. A transform
    whose options turn it off attaches nothing, so a zero perturbation leaves the model exactly as without."""
    chosen = []
    for name, options in transforms.items():
        cls = TRANSFORMS.get(name)
        probe = cls(cls.expand(options) if not hasattr(options, "model_dump") else options, seed)
        if cls.active(probe.options):
            chosen.append((cls, probe.options))
    chosen.sort(key=lambda item: item[0].order)
    for name, layer in layers:
        for cls, options in chosen:
            attach(layer, cls(options, seed), name)
    return len(chosen)
