"""Spike-count coding of the error: at most N spikes per unit, unbiased."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from .base import TRANSFORMS, ErrorTransform


def quantize(delta: Tensor, spikes: int, generator: torch.Generator | None = None) -> Tensor:
    """Unbiased stochastic spike-count coding of ``delta`` with at most ``spikes`` spikes per unit:
    m = max|delta|, c = N |delta| / m, q = sign(delta) m / N (floor(c) + Bernoulli(c - floor(c))), so E[q] = delta."""
    scale = delta.detach().abs().max().float()
    if scale == 0:
        return delta
    count = delta.float().abs() * (spikes / scale)
    low = count.floor()
    extra = torch.rand(count.shape, generator=generator, device=count.device) < (count - low)
    return (torch.sign(delta.float()) * (low + extra) * (scale / spikes)).to(delta.dtype)


class QuantizationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spikes: int = Field(0, ge=0, le=1_000_000)


@TRANSFORMS.register
class ErrorQuantization(ErrorTransform):
    """delta <- quantize(delta, N): the error as a stochastic spike count (see :func:`quantize`)."""

    name = "error_quantization"
    Options = QuantizationOptions
    shorthand = "spikes"
    order = 1

    def on_error(self, layer: nn.Module, delta: Tensor, generator: torch.Generator,
                 rows: slice | None) -> Tensor:
        return quantize(delta, self.options.spikes, generator)
