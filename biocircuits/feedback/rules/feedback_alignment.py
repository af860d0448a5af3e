"""Feedback alignment (Lillicrap et al. 2016): a fixed random B, drawn once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from .registry import FeedbackRule, draw_init_uniform, draw_paper, paper_scale, register_rule


class FeedbackAlignmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    init: Literal["paper", "uniform", "signed"] = Field(
        "paper",
        description="How the fixed B is drawn: `paper` (Xiao et al. 2018: conv N(0, 2 / (k_h k_w C_out)), linear "
        "U(+-1/sqrt(fan_in))), `uniform` (U(+-1/sqrt(fan_in)) everywhere) or `signed` (sign(W_0) times "
        "the paper's scale).",
    )


def _signed(weight: Tensor, seed: int) -> Tensor:
    return torch.sign(weight) * paper_scale(weight)


# B at conversion, from the layer's weight W_0 and the layer's seed
INITS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "paper": draw_paper,
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
      1/sqrt(fan_in) for a linear layer (sign symmetry frozen at the initial signs). W_0 is the weight as
      ``bc.apply`` leaves it (after Dale's signed init), and the weight a *plain* checkpoint brings: loading a state
      dict that holds the layer's weight but not its ``feedback_weight`` (torchvision weights, a plain torch
      model's) derives B again from the loaded W, so sign(B) = sign(W) holds after the load. A biocircuits
      checkpoint (with ``feedback_weight``) restores B as saved."""

    name = "fa"
    Options = FeedbackAlignmentOptions

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        feedback = INITS[self.options.init](layer.weight.detach(), self.layer_seed)
        self.register_buffer(layer, "feedback_weight", feedback)
        self._plain_load = False
        layer.register_load_state_dict_post_hook(self._after_load)

    def detach(self, layer: nn.Module) -> None:
        """Drop the buffers and this rule's load hook (found by identity, so a deep copy of the model removes its
        own hook, not the original's)."""
        hooks = layer._load_state_dict_post_hooks
        for key in [k for k, hook in hooks.items() if getattr(hook, "__self__", None) is self]:
            del hooks[key]
        super().detach(layer)

    @classmethod
    def attach_group(cls, members, model: nn.Module) -> None:
        """``signed``: B from W as ``bc.apply`` leaves it (Dale's signed init runs after the rule is attached)."""
        for _, layer, rule in members:
            if rule.options.init == "signed":
                rule.derive_feedback(layer)

    @torch.no_grad()
    def derive_feedback(self, layer: nn.Module) -> None:
        """B = sign(W) * s from the layer's current W (``init: signed``)."""
        layer.feedback_weight.copy_(INITS["signed"](layer.weight.detach(), self.layer_seed))

    def prepare_load(self, layer: nn.Module, state_dict: dict[str, Tensor], prefix: str) -> None:
        """Note whether ``state_dict`` is a plain checkpoint for this layer: W in it, B not."""
        super().prepare_load(layer, state_dict, prefix)
        weight_keys = (prefix + "weight", prefix + "parametrizations.weight.original")
        self._plain_load = any(k in state_dict for k in weight_keys) and prefix + "feedback_weight" not in state_dict

    def _after_load(self, layer: nn.Module, incompatible) -> None:
        """After the layer and its parametrisations are loaded: a plain checkpoint's W gets a B derived from it when
        B is W-derived (``init: signed``), and learned rules drop the state that belonged to the old B."""
        if self._plain_load:
            self._plain_load = False
            self.plain_checkpoint_loaded(layer)

    def plain_checkpoint_loaded(self, layer: nn.Module) -> None:
        if self.options.init == "signed":
            self.derive_feedback(layer)

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        return layer.feedback_weight


def weight_feedback_angle(layer: nn.Module) -> float:
    """The angle in degrees between the layer's W and its B (flattened), the figure learned-feedback rules report."""
    w, b = layer.weight.detach().double().flatten(), layer.feedback_weight.detach().double().flatten()
    cos = float(w @ b / (w.norm() * b.norm()).clamp(min=1e-300))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))
