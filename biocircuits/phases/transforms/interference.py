"""No phase separation: the feedback signal shares the neurons with the forward activity (``interference``)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from .base import TRANSFORMS
from .streams import StreamState, state_rows


class InterferenceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gamma: float = Field(
        0.0,
        ge=-1e3,
        le=1e3,
        description="Weight of the previous step's feedback signal added to the layer's activity; 0 is clean phase "
        "separation, < 0 adds -delta.",
    )
    scale: Literal["activity", "error"] = Field(
        "activity",
        description="`activity`: gamma is the signal's size relative to the activity's rms; `error`: the signal keeps"
        " its own size (gamma times each example's error).",
    )


def _rms(t: Tensor) -> Tensor:
    """Root mean square of each row (stream) of ``t`` (one pass, no copy): shape (rows, 1, ..., 1)."""
    rows = t.flatten(1)
    norm = torch.linalg.vector_norm(rows, dim=1, dtype=torch.float32 if t.dtype != torch.float64 else None)
    return (norm / rows.shape[1] ** 0.5).view(-1, *([1] * (t.dim() - 1)))


@TRANSFORMS.register
class Interference(StreamState):
    """The feedback signal s_t = delta_t (the error the layer's backward used at step t, after the other
    transforms) stays in the layer's units and is added to their forward activity at step t + 1, per stream b,
    at one of two scales (option ``scale``):

        activity (default):  y'_(t+1)[b] = y_(t+1)[b] + gamma * rms(y_(t+1)[b]) / rms(s_t[b]) * s_t[b]
        error:               y'_(t+1)[b] = y_(t+1)[b] + gamma * S * s_t[b]

    (rms over the units of one stream; the added term is a constant of the step: it carries no gradient, but
    everything downstream -- activity, derivatives, the loss -- sees y'). With ``activity`` gamma is the feedback
    signal's size relative to the activity, whatever the error's own size: a vanishing error (a converged net)
    still adds gamma times the activity's rms. With ``error`` the signal keeps its own size and fades with the
    error: S is the number of streams (the rows of one optimiser step on this process), so for a loss averaged
    over the step's examples (the trainer's) S s_t[b] = dl_b/dy_b is example b's own error and gamma its weight,
    whatever the batch size (a summed loss makes it S times that; under fp16 loss scaling the stored error
    carries the step's loss scale, and so does the added term: use bf16 or ``activity``). gamma = 0 is clean
    phase separation; gamma < 0 adds the teaching direction -delta. A stream whose signal is zero (the first
    step) gets nothing added. Buffer ``interference_signal``: (S, *y.shape[1:])."""

    name = "interference"
    Options = InterferenceOptions
    shorthand = "gamma"
    order = 90  # last: it records the error the layer's backward uses
    spec_key = True
    stream_buffers = error_buffers = ("interference_signal",)

    @classmethod
    def attach_group(cls, members, model: nn.Module) -> None:
        super().attach_group(members, model)
        for _, layer, att in members:
            layer.attachments.activity = att.activity

    def activity(self, layer: nn.Module, y: Tensor, rows: slice) -> Tensor:
        """y' = y + the scaled feedback signal of the last step (rows ``rows``)."""
        with torch.no_grad():
            signal = state_rows(layer, "interference_signal", rows, y)
        if self.options.scale == "error":  # before S is fixed (the first step) every signal is still zero
            return y.add(signal.to(y.dtype), alpha=self.options.gamma * (self.clock.streams or 1))
        with torch.no_grad():
            size = _rms(signal)
            scale = torch.where(size > 0, self.options.gamma * _rms(y) / size.clamp(min=1e-30), torch.zeros_like(size))
        return torch.addcmul(y, signal.to(y.dtype), scale.to(y.dtype))  # one pass; the constant has no grad

    @torch.no_grad()
    def on_error(self, layer: nn.Module, delta: Tensor, generator: torch.Generator, rows: slice | None) -> Tensor:
        if rows is not None:
            state_rows(layer, "interference_signal", rows, delta).copy_(delta)
        return delta
