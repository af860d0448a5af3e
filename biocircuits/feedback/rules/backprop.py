"""Backpropagation: B = W, the exact gradient (weight transport)."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import FeedbackRule, register_rule


@register_rule
class Backprop(FeedbackRule):
    """B = W: grad_input = W^T delta, identical to plain autograd."""

    name = "bp"
    reads_weight = True
    exact_gradient = True

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        return weight
