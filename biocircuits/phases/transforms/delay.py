"""Late errors: the optimiser applies the gradients of K steps ago."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from biocircuits.core.interface import StepState
from biocircuits.core.layers import synapse_params

from .base import TRANSFORMS, ErrorTransform
from .late import LateError


class DelayOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(
        0,
        ge=0,
        le=10_000,
        description="K: the update at step t uses the error and activity of step t - K (stored oracle); 0 is off.",
    )


@TRANSFORMS.register
class ErrorDelay(ErrorTransform):
    """The update at step t uses the error and presynaptic activity of step t - K:
    grad_W(t) <- delta(t - K) x(t - K)^T (and the bias likewise); zero for the first K steps.

    This is the *stored* late error: each delayed update pairs its error with exactly the activity that caused it,
    which needs a memory of K weight-sized gradients (buffers ``delay_queue_weight``, ``delay_queue_bias``; the
    step counter ``delay_count``). Every tensor the error updates waits: under DANN that is W_EE, W_IE and W_EI (and
    alpha and g under divisive inhibition; buffers ``delay_queue_weight_ie`` ...), so the interneurons learn as late
    as the E synapses.

    Only the update is late. The error pathway runs on time: noise, quantisation, the filter and interference act
    on delta(t - K) during the backward of step t - K, when it was made (the filter's and interference's state
    advance with the on-time errors), and the gradient they produce is what waits K steps. With
    ``backward_state: current | trace`` ([`LateError`][biocircuits.phases.transforms.late.LateError]) they act on the
    late error instead."""

    name = "error_delay"
    Options = DelayOptions
    shorthand = "steps"
    order = 10

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        k = self.options.steps
        for pname, param in synapse_params(layer):
            queue = torch.zeros((k, *param.shape), dtype=param.dtype, device=param.device)
            self.register_buffer(layer, f"delay_queue_{pname}", queue)
        self.register_buffer(layer, "delay_count", torch.zeros((), dtype=torch.int64, device=layer.weight.device))

    @classmethod
    @torch.no_grad()
    def before_step_group(cls, members, step: StepState) -> None:
        """Swap each gradient with the one stored K steps ago, over all layers at once (foreach copies). Only tensors
        this optimiser owns are delayed: the gradient of one it does not step (e.g. DANN's W_EE when only the
        interneurons train) only accumulates and is never an update."""
        ready: tuple[list, list, list] = ([], [], [])
        waiting: tuple[list, list] = ([], [])
        for layer, att in members:
            count, k = int(layer.delay_count), att.options.steps
            for pname, param in synapse_params(layer):
                if param.grad is None or id(param) not in step.params:
                    continue
                slot = getattr(layer, f"delay_queue_{pname}")[count % k]
                if count >= k:
                    ready[0].append(slot), ready[1].append(param.grad), ready[2].append(slot.clone())
                else:
                    waiting[0].append(slot), waiting[1].append(param.grad)
            layer.delay_count += 1
        if ready[0]:
            torch._foreach_copy_(ready[0], ready[1])
            torch._foreach_copy_(ready[1], ready[2])
        if waiting[0]:
            torch._foreach_copy_(waiting[0], waiting[1])
            torch._foreach_zero_(waiting[1])

    @classmethod
    def acting_class(cls, phases: Any) -> type[ErrorTransform]:
        """``error_delay: K`` is this stored delay under ``backward_state: stored``; otherwise the late error meets the
        current state ([`LateError`][biocircuits.phases.transforms.late.LateError])."""
        return cls if phases.backward_state == "stored" else LateError
