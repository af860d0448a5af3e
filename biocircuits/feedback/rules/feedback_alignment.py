"""Feedback alignment (Lillicrap et al. 2016): a fixed random B, drawn once."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import FeedbackRule, draw_init_uniform, register_rule


@register_rule
class FeedbackAlignment(FeedbackRule):
    """B ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) elementwise (the layer's default init distribution), drawn
    once from a generator seeded by (seed, layer name) and kept in the persistent buffer
    ``feedback_weight``: identical on every rank and device, saved and loaded with the model."""

    name = "fa"

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        self.register_buffer(layer, "feedback_weight", draw_init_uniform(layer.weight.detach(), self.layer_seed))

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        return layer.feedback_weight
