"""Projection: after each optimiser step, every weight whose sign breaks Dale is set to zero."""

from __future__ import annotations

import torch

from biocircuits.core.foreach import mul_

from .base import ENFORCERS, DaleEnforcer, signed_weights


@ENFORCERS.register
class Project(DaleEnforcer):
    """W <- s * max(s * W, 0) after each step (s the sign mask): the Euclidean projection onto the sign-constrained
    set, i.e. the wrong-signed weights become 0. Runs over all projected layers at once: one foreach clamp, between
    two in-place multiplications by the small broadcast masks (multiplying by s = +-1 twice is exact; foreach
    multiplication by broadcast tensors takes a slow path on the CPU)."""

    name = "project"

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step) -> None:
        weights = signed_weights(members)
        masks = cls.cached_masks(members, weights)
        mul_(weights, masks)
        torch._foreach_clamp_min_(weights, 0.0)
        mul_(weights, masks)
