"""Additive Gaussian noise on the error pathway."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from biocircuits.core.scratch import scratch_like

from .base import TRANSFORMS, ErrorTransform


class NoiseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sigma: float = Field(
        0.0,
        ge=0.0,
        le=1e6,
        description="Noise-to-signal ratio: delta <- delta + sigma rms(delta) xi, xi ~ N(0, 1); 0 is off.",
    )


@TRANSFORMS.register
class ErrorNoise(ErrorTransform):
    """delta <- delta + sigma * rms(delta) * xi, xi ~ N(0, 1) elementwise (rms over the whole batch tensor), so
    sigma is the noise-to-signal ratio of the error."""

    name = "error_noise"
    Options = NoiseOptions
    shorthand = "sigma"
    order = 0

    def on_error(self, layer: nn.Module, delta: Tensor, generator: torch.Generator, rows: slice | None) -> Tensor:
        # in place on the drawn noise, delta^2 in scratch memory: one new tensor (the returned error), the values of
        # (delta + sigma * rms * xi) exactly
        d = delta.float()
        rms = torch.pow(d, 2, out=scratch_like(d)).mean().sqrt()
        xi = torch.randn(delta.shape, generator=generator, device=delta.device, dtype=torch.float32)
        return xi.mul_(self.options.sigma * rms).add_(delta).to(delta.dtype)
