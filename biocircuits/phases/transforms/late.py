"""Late errors that meet the current activity (``error_delay: K`` with ``backward_state: current`` or ``trace``)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from biocircuits.core.interface import StepState

from .base import TRANSFORMS
from .streams import StreamState, find_clock, output_view, state_rows


class LateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(
        0,
        ge=0,
        le=10_000,
        description="K: the output error of step t - K is sent down through the network state of step t; 0 is off.",
    )


@TRANSFORMS.register
class LateError(StreamState):
    """Attached to the root module: the output error of step t - K is sent down the feedback pathway through the
    network state of step t. Per stream b, with e_t[b] = dL_t/dy_t[b] the error at the model's output,

        backward at step t:  dL/dy_t[b] <- e_(t-K)[b]      (zero for t <= K)

    so every layer's error and weight update are computed with the *current* stimulus's activity and derivatives
    (``backward_state: current``), or with its eligibility trace (``backward_state: trace``). Only K output-sized
    tensors per stream are kept (buffer ``late_error_queue``: (S, K, *y.shape[1:]); ``late_error_count`` counts
    steps), against K weight-sized gradients for the ``stored`` oracle
    ([`ErrorDelay`][biocircuits.phases.transforms.delay.ErrorDelay]). Errors are stored as they arrive (under fp16 loss
    scaling, with that step's scale), before any transform: the swap acts on the model's output ahead of every layer's
    error pathway, so on every layer -- the last one included -- noise, quantisation, the filter and interference act on
    the late error e_(t-K), and the queue holds the untransformed e_t."""

    name = "late_error"
    Options = LateOptions
    shorthand = "steps"
    whole_model = True
    stream_buffers = error_buffers = ("late_error_queue",)

    def attach(self, model: nn.Module, qualname: str) -> None:
        super().attach(model, qualname)
        self.register_buffer(
            model, "late_error_count", torch.zeros((), dtype=torch.int64, device=model.stream_count.device)
        )
        self.root = model
        self._slot = None

    @classmethod
    def attach_group(cls, members, model: nn.Module) -> None:
        super().attach_group(members, model)
        for _, _, att in members:
            find_clock(model).add_output_hook(att.on_output, rank=0)

    def on_output(self, out: Tensor, rows: slice) -> Tensor:
        """At the end of a training forward: the output's gradient will be swapped for the queued error, first of
        everything in the backward pass (see [`output_view`][biocircuits.phases.transforms.streams.output_view])."""
        return output_view(out, rows, self.swap, "error_delay with backward_state current/trace")

    @torch.no_grad()
    def swap(self, grad: Tensor, rows: slice) -> Tensor:
        """Store e_t for rows ``rows`` and return e_(t-K)."""
        if self._slot is None:
            self._slot = int(self.root.late_error_count) % self.options.steps
        queue = state_rows(
            self.root,
            "late_error_queue",
            rows,
            grad.unsqueeze(1).expand(grad.shape[0], self.options.steps, *grad.shape[1:]),
        )
        slot = queue[:, self._slot]
        late = slot.to(grad.dtype, copy=True)
        slot.copy_(grad)
        return late

    @torch.no_grad()
    def before_step(self, model: nn.Module, step: StepState) -> None:
        model.late_error_count += 1
        self._slot = None
