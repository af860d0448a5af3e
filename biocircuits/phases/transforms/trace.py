"""Eligibility traces of presynaptic activity (``backward_state: trace``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from .base import TRANSFORMS
from .streams import StreamState, state_rows


class TraceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decay: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="lambda of the presynaptic eligibility trace xbar_t = lambda xbar_(t-1) + (1 - lambda) x_t; 0 is "
        "the plain update.",
    )


@TRANSFORMS.register
class EligibilityTrace(StreamState):
    """A three-factor rule: each synapse keeps an eligibility trace of its presynaptic activity, per stream b,

        xbar_t[b] = lambda xbar_(t-1)[b] + (1 - lambda) x_t[b]        (xbar_0 = 0)

    and the weight update pairs the error that arrives at step t (the third factor) with the trace:

        grad_W(t) = sum_b delta_t[b] xbar_t[b]^T          (linear; a conv pairs delta with xbar as its input)

    instead of delta_t x_t^T. The forward pass and the error sent down (B^T delta) are unchanged; the bias, whose
    presynaptic input is the constant 1, learns from delta_t as before. lambda = 0 is the plain update. Set in a
    spec by ``phases: {backward_state: trace, trace_decay: lambda}`` (or ``trace_tau: tau`` steps, lambda =
    exp(-1 / tau)); with ``error_delay: K`` the error is the output error of step t - K sent through the state of
    step t. Buffer ``trace_input``: (S, *x.shape[1:]), one row per stream (see
    [`biocircuits.phases.transforms.streams`][biocircuits.phases.transforms.streams]); for a conv x is the padded
    input."""

    name = "eligibility_trace"
    Options = TraceOptions
    shorthand = "decay"
    order = 30
    stream_buffers = ("trace_input",)

    @classmethod
    def implied_by(cls, phases: Any) -> dict[str, Any] | None:
        """``backward_state: trace`` implies the trace, with decay lambda from ``trace_decay`` or ``trace_tau``."""
        return {"decay": phases.trace_lambda()} if phases.backward_state == "trace" else None

    @classmethod
    def attach_group(cls, members, model: nn.Module) -> None:
        super().attach_group(members, model)
        for _, layer, att in members:
            layer.attachments.presynaptic = att.presynaptic

    @torch.no_grad()
    def presynaptic(self, layer: nn.Module, x: Tensor, rows: slice) -> Tensor:
        """Advance the trace of rows ``rows`` with the input ``x`` (shape (rows, ...)); returns xbar_t."""
        if x.shape[0] != rows.stop - rows.start:
            raise ValueError(
                f"{layer.attachments.qualname}: eligibility traces need the batch in dimension 0 of "
                f"the layer's input (got {tuple(x.shape)} for {rows.stop - rows.start} streams)"
            )
        trace = state_rows(layer, "trace_input", rows, x)
        lam = self.options.decay
        trace.lerp_(x.detach().to(trace.dtype), 1.0 - lam)  # lambda xbar + (1 - lambda) x in one pass
        # a copy: the backward must not see the buffer, which later micro-batches change in place
        return trace.to(x.dtype, copy=True)


def decay_from_tau(tau: float) -> float:
    """lambda = exp(-1 / tau) for a time constant of ``tau`` steps (tau = 0: no memory, lambda = 0)."""
    return math.exp(-1.0 / tau) if tau > 0 else 0.0
