"""Continuous errors: the error is low-pass filtered per stream (``error_filter``), in every layer (a cascade of
leaky error units, the default) or once at the model's output (``cascade: false``)."""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from .base import TRANSFORMS, ErrorTransform
from .streams import StreamState, find_clock, output_view, state_rows


class FilterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tau: float = Field(
        0.0,
        ge=0.0,
        le=1e6,
        description="Time constant in optimiser steps of the low-pass e_t = a e_(t-1) + (1 - a) delta_t, a = exp(-1 /"
        " tau); 0 is off.",
    )
    cascade: bool = Field(
        True,
        description="Filter at every converted layer (the lag grows with depth); false: once, at the model's output.",
    )


def mean_lag(tau: float, stages: int = 1) -> float:
    """The mean delay, in steps, of ``stages`` filters e_t = a e_(t-1) + (1 - a) delta_t in series,
    a = exp(-1 / tau): one stage's impulse response (1 - a) a^k has mean a / (1 - a) (about tau - 1/2), and the
    means of stages in series add."""
    if tau == 0:
        return 0.0
    a = math.exp(-1.0 / tau)
    return stages * a / (1.0 - a)


@TRANSFORMS.register
class ErrorFilter(StreamState):
    """The error delta_t = dL/dy arriving at the layer's units is low-pass filtered per stream b,

        e_t[b] = a e_(t-1)[b] + (1 - a) delta_t[b],     a = exp(-1 / tau),   e_0 = 0,

    and e_t is what the layer's backward uses (its weight update and the error it sends down): errors linger and
    bleed into the following stimuli of the same stream. ``tau`` in steps; 0 is off. Applied after noise and
    quantisation. Buffer ``filtered_error``: (S, *y.shape[1:]).

    The filters cascade: every converted layer filters the error that reaches it, which the filtered layer above
    sent down, so the last converted layer sees the output error through one stage and a layer d converted layers
    below it through d + 1 stages (a chain of leaky error units). The lag grows with depth: the mean delay of
    n stages is n a / (1 - a) steps ([`mean_lag`][biocircuits.phases.transforms.filtering.mean_lag]; tau = 4: 3.5 steps
    at the output layer, 7.0 one layer below). ``cascade: false`` filters once, at the model's output, instead
    ([`OutputErrorFilter`][biocircuits.phases.transforms.filtering.OutputErrorFilter])."""

    name = "error_filter"
    Options = FilterOptions
    shorthand = "tau"
    order = 40
    spec_key = True
    stream_buffers = error_buffers = ("filtered_error",)

    @classmethod
    def variant(cls, options: FilterOptions) -> type[ErrorTransform]:
        return cls if options.cascade else OutputErrorFilter

    @torch.no_grad()
    def on_error(self, layer: nn.Module, delta: Tensor, generator: torch.Generator, rows: slice | None) -> Tensor:
        if rows is None:
            return delta
        a = math.exp(-1.0 / self.options.tau)
        state = state_rows(layer, "filtered_error", rows, delta)
        state.lerp_(delta.to(state.dtype), 1.0 - a)  # a e + (1 - a) delta in one pass
        return state.to(delta.dtype)


@TRANSFORMS.register
class OutputErrorFilter(StreamState):
    """``error_filter: {tau: tau, cascade: false}``: one filter stage for the whole pathway. Attached to the root
    module; per stream b, with delta_t[b] = dL/dy_t[b] the error at the model's output (the late error e_(t-K)
    under ``error_delay`` with ``backward_state: current | trace``),

        e_t[b] = a e_(t-1)[b] + (1 - a) delta_t[b],     a = exp(-1 / tau),   e_0 = 0,

    and e_t is sent down the feedback pathway through the network state of step t. Every layer's error is
    B^T e_t gated by the current derivatives, so every layer lags by the same one stage (mean a / (1 - a)
    steps, [`mean_lag`][biocircuits.phases.transforms.filtering.mean_lag]); where the pathway is linear and fixed
    (constant B and f') this equals filtering each layer's own error once. The filter acts before every layer's
    transforms (noise and quantisation then perturb the filtered error). Buffer ``filtered_output_error``: (S,
    *y.shape[1:])."""

    name = "output_error_filter"
    Options = FilterOptions
    shorthand = "tau"
    order = 40
    whole_model = True
    stream_buffers = error_buffers = ("filtered_output_error",)

    def attach(self, model: nn.Module, qualname: str) -> None:
        super().attach(model, qualname)
        self.root = model

    @classmethod
    def attach_group(cls, members, model: nn.Module) -> None:
        super().attach_group(members, model)
        for _, _, att in members:
            find_clock(model).add_output_hook(att.on_output, rank=1)  # after the late-error swap (rank 0)

    def on_output(self, out: Tensor, rows: slice) -> Tensor:
        return output_view(out, rows, self.filter, "error_filter with cascade: false")

    @torch.no_grad()
    def filter(self, grad: Tensor, rows: slice) -> Tensor:
        """e_t for rows ``rows`` from the output error ``grad``."""
        a = math.exp(-1.0 / self.options.tau)
        state = state_rows(self.root, "filtered_output_error", rows, grad)
        state.lerp_(grad.to(state.dtype), 1.0 - a)
        return state.to(grad.dtype)
