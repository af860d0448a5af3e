"""Continuous errors: the error reaching a layer is low-pass filtered per stream (``error_filter``)."""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from .base import TRANSFORMS
from .streams import StreamState, state_rows


class FilterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tau: float = Field(0.0, ge=0.0, le=1e6)


@TRANSFORMS.register
class ErrorFilter(StreamState):
    """The error delta_t = dL/dy arriving at the layer's units is low-pass filtered per stream b,

        e_t[b] = a e_(t-1)[b] + (1 - a) delta_t[b],     a = exp(-1 / tau),   e_0 = 0,

    and e_t is what the layer's backward uses (its weight update and the error it sends down): errors linger and
    bleed into the following stimuli of the same stream. Every converted layer filters the error that reaches it,
    so a layer d layers below the output sees the output error through d such stages (a chain of leaky error
    units). Applied after noise and quantisation. ``tau`` in steps; 0 is off. Buffer ``filtered_error``:
    (S, *y.shape[1:])."""

    name = "error_filter"
    Options = FilterOptions
    shorthand = "tau"
    order = 40
    spec_key = True
    stream_buffers = error_buffers = ("filtered_error",)

    @torch.no_grad()
    def on_error(self, layer: nn.Module, delta: Tensor, generator: torch.Generator, rows: slice | None) -> Tensor:
        if rows is None:
            return delta
        a = math.exp(-1.0 / self.options.tau)
        state = state_rows(layer, "filtered_error", rows, delta)
        state.lerp_(delta.to(state.dtype), 1.0 - a)   # a e + (1 - a) delta in one pass
        return state.to(delta.dtype)
