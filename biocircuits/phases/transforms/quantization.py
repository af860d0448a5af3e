"""Spike-count coding of the error: at most N spikes per unit, unbiased."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from biocircuits.core.scratch import scratch_like

from .base import TRANSFORMS, ErrorTransform


def quantize(delta: Tensor, spikes: int, generator: torch.Generator | None = None) -> Tensor:
    """Unbiased stochastic spike-count coding of ``delta`` with at most ``spikes`` spikes per unit:
    m = max|delta|, c = N |delta| / m, q = sign(delta) m / N (floor(c) + Bernoulli(c - floor(c))), so E[q] = delta."""
    # in place, |delta| and the draws in scratch memory: one new tensor (the returned error); the same values, draw
    # for draw, as sign(delta) * (floor(c) + (u < c - floor(c))) * (m / N)
    d = delta.detach().float()
    count = torch.abs(d, out=scratch_like(d, slot=0))
    scale = count.max()
    if scale == 0:
        return delta
    count.mul_(spikes / scale)
    low = count.floor()
    frac = count.sub_(low)
    # torch.rand's draws (in the default dtype, as torch.rand makes them), in place
    draw = scratch_like(frac, slot=1, dtype=torch.get_default_dtype()).uniform_(generator=generator)
    extra = torch.lt(draw, frac, out=draw)  # the Bernoulli(frac) spike, as 1.0 / 0.0 in the draw's memory
    return low.add_(extra).mul_(scale / spikes).copysign_(delta).to(delta.dtype)


class QuantizationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spikes: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="N: the error as an unbiased stochastic count of at most N spikes per unit (resolution max|delta|"
        " / N); 0 is off.",
    )


@TRANSFORMS.register
class ErrorQuantization(ErrorTransform):
    """delta <- quantize(delta, N): the error as a stochastic spike count (see
    [`quantize`][biocircuits.phases.transforms.quantization.quantize])."""

    name = "error_quantization"
    Options = QuantizationOptions
    shorthand = "spikes"
    order = 1

    def on_error(self, layer: nn.Module, delta: Tensor, generator: torch.Generator, rows: slice | None) -> Tensor:
        return quantize(delta, self.options.spikes, generator)
