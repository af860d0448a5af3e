"""Feedback alignment (Lillicrap et al. 2016): a fixed random B, drawn once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from .registry import FeedbackRule, draw, draw_init_uniform, paper_scale, register_rule


class FeedbackAlignmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    init: Literal["paper", "uniform", "signed"] = "paper"


def _paper(weight: Tensor, seed: int) -> Tensor:
    if weight.dim() == 2:
        return draw_init_uniform(weight, seed)
    std = paper_scale(weight)
    return draw(weight, seed, lambda t, gen: t.normal_(0.0, std, generator=gen))


def _signed(weight: Tensor, seed: int) -> Tensor:
    return torch.sign(weight) * paper_scale(weight)


# B at conversion, from the layer's weight W_0 and the layer's seed
INITS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "paper": _paper,
    "uniform": draw_init_uniform,
    "signed": _signed,
}


@register_rule
class FeedbackAlignment(FeedbackRule):
    """A fixed B, kept in the persistent buffer ``feedback_weight`` (identical on every rank and device, saved and
    loaded with the model), drawn once from a generator seeded by (seed, layer name). ``init``:

    - ``paper`` (default; Xiao et al. 2018's code): conv B ~ N(0, 2 / (k_h k_w C_out)) elementwise, linear
      B ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in));
    - ``uniform``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every layer (torch's default layer init);
    - ``signed`` (Xiao et al.'s "signed init"): B = sign(W_0) * s with s = sqrt(2 / (k_h k_w C_out)) for a conv,
      1/sqrt(fan_in) for a linear layer, fixed at conversion (sign symmetry frozen at the initial signs)."""

    name = "fa"
    Options = FeedbackAlignmentOptions

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        feedback = INITS[self.options.init](layer.weight.detach(), self.layer_seed)
        self.register_buffer(layer, "feedback_weight", feedback)

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        return layer.feedback_weight


def weight_feedback_angle(layer: nn.Module) -> float:
    """The angle in degrees between the layer's W and its B (flattened), the figure learned-feedback rules report."""
    w, b = layer.weight.detach().double().flatten(), layer.feedback_weight.detach().double().flatten()
    cos = float(w @ b / (w.norm() * b.norm()).clamp(min=1e-300))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))
