"""Projection: after each optimiser step, every weight whose sign breaks Dale is set to zero."""

from __future__ import annotations

import torch

from biocircuits.core.foreach import mul_

from .base import ENFORCERS, DaleEnforcer, signed_weights


@ENFORCERS.register
class Project(DaleEnforcer):
    """W <- s * max(s * W, 0) after each step (s the sign mask): the Euclidean projection onto the sign-constrained
    set, i.e. the wrong-signed weights become 0. A layer whose signs form a few runs along the input dimension
    (the ``block`` assignment) is clamped in place, clamp(min=0) on its E columns and clamp(max=0) on its I columns
    (one pass over W); the other layers together get one foreach clamp between two in-place multiplications by
    their small broadcast masks (multiplying by s = +-1 twice is exact)."""

    name = "project"

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step) -> None:
        masked = []
        for member, weight in zip(members, signed_weights(members), strict=True):
            runs = cls.cached_runs(member)
            if runs is None:
                masked.append((member, weight))
                continue
            for start, stop, sign in runs:
                weight[:, start:stop].clamp_(**({"min": 0.0} if sign > 0 else {"max": 0.0}))
        if masked:
            weights = [w for _, w in masked]
            masks = cls.cached_masks([m for m, _ in masked], weights)
            mul_(weights, masks)
            torch._foreach_clamp_min_(weights, 0.0)
            mul_(weights, masks)
