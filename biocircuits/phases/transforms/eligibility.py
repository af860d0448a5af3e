"""A decaying sum of past gradients (what ``eligibility_decay`` has always computed)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from biocircuits.core.interface import StepState
from biocircuits.core.layers import trainable_params

from .base import TRANSFORMS, ErrorTransform


class EligibilityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decay: float = Field(0.0, ge=0.0, lt=1.0)


@TRANSFORMS.register
class EligibilityDecay(ErrorTransform):
    """The update is an exponentially decaying sum of gradients, e_t = lambda e_{t-1} + grad_W(t), applied in place
    of grad_W(t) (buffers ``eligibility_weight``, ``eligibility_bias``). With plain SGD this is the same trajectory
    as momentum lambda: a trace over *gradients*, not over presynaptic activity."""

    name = "eligibility_decay"
    Options = EligibilityOptions
    shorthand = "decay"
    order = 20

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        for pname, param in trainable_params(layer):
            self.register_buffer(layer, f"eligibility_{pname}", torch.zeros_like(param))

    @classmethod
    @torch.no_grad()
    def before_step_group(cls, members, step: StepState) -> None:
        """e <- lambda e + g; g <- e, over all layers with the same lambda at once (foreach ops)."""
        by_decay: dict[float, tuple[list, list]] = {}
        for layer, att in members:
            traces, grads = by_decay.setdefault(att.options.decay, ([], []))
            for pname, param in trainable_params(layer):
                if param.grad is not None:
                    traces.append(getattr(layer, f"eligibility_{pname}"))
                    grads.append(param.grad)
        for decay, (traces, grads) in by_decay.items():
            if traces:
                torch._foreach_mul_(traces, decay)
                torch._foreach_add_(traces, grads)
                torch._foreach_copy_(grads, traces)
