"""Projection: after each optimiser step, every weight whose sign breaks Dale is set to zero."""

from __future__ import annotations

import torch

from .base import ENFORCERS, DaleEnforcer, signed_weights


@ENFORCERS.register
class Project(DaleEnforcer):
    """W <- s * max(s * W, 0) after each step (s the sign mask): the Euclidean projection onto the sign-constrained
    set, i.e. the wrong-signed weights become 0. Runs over all projected layers at once (foreach ops; the masks
    broadcast over each weight, and multiplying by s = +-1 twice is exact)."""

    name = "project"

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step) -> None:
        weights = signed_weights(members)
        masks = cls.cached_masks(members, weights)
        torch._foreach_mul_(weights, masks)
        torch._foreach_clamp_min_(weights, 0.0)
        torch._foreach_mul_(weights, masks)
