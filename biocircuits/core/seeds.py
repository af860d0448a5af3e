"""Per-layer seeds: every random draw of a layer (feedback weights, error noise) comes from its own stream."""

from __future__ import annotations

import zlib


def layer_seed(seed: int, qualname: str) -> int:
    """A per-layer seed derived from the run's seed and the layer's qualified name (stable across runs,
    processes and ranks). The pair is hashed (splitmix64 with a salt), so a feedback draw never replays the
    stream that ``torch.manual_seed(seed)`` gave the weights themselves."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + zlib.crc32(qualname.encode()) + 0xB10C1C0175) % 2**64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) % 2**64
    return (x ^ (x >> 31)) % 2**62


def step_seed(seed: int, step: int, stride: int = 104729) -> int:
    """The seed of draw number ``step`` of a stream whose base seed is ``seed``."""
    return (int(seed) + stride * int(step)) % (2**62)
