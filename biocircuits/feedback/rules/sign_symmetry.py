"""Sign symmetry (Liao, Leibo & Poggio 2016; Xiao et al. 2018): B = sign(W) times a magnitude."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from .registry import FeedbackRule, draw_init_uniform, init_std, register_rule

Magnitude = Literal["init_std", "unit", "weight_rms", "random_fixed", "random_batch"]


class SignSymmetryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    magnitude: Magnitude = "init_std"


# ``sign`` is a fresh tensor: scaling it in place avoids a second weight-sized allocation per step.
def _init_std(rule: SignSymmetry, layer: nn.Module, weight: Tensor, sign: Tensor) -> Tensor:
    return sign.mul_(init_std(weight))


def _unit(rule: SignSymmetry, layer: nn.Module, weight: Tensor, sign: Tensor) -> Tensor:
    return sign


def _weight_rms(rule: SignSymmetry, layer: nn.Module, weight: Tensor, sign: Tensor) -> Tensor:
    return sign.mul_(torch.linalg.vector_norm(weight) / weight.numel() ** 0.5)


def _random(rule: SignSymmetry, layer: nn.Module, weight: Tensor, sign: Tensor) -> Tensor:
    return sign.mul_(layer.feedback_weight)


# B = sign(W) * magnitude(...), one entry per option value.
MAGNITUDES: dict[str, Callable[[SignSymmetry, nn.Module, Tensor, Tensor], Tensor]] = {
    "init_std": _init_std,
    "unit": _unit,
    "weight_rms": _weight_rms,
    "random_fixed": _random,
    "random_batch": _random,
}


@register_rule
class SignSymmetry(FeedbackRule):
    """B = sign(W) * M, always from the *current* W. Magnitudes M:

    - ``init_std`` (default): the std of the layer's default init, 1/sqrt(3 fan_in);
    - ``unit``: 1;
    - ``weight_rms``: the current RMS of W;
    - ``random_fixed`` (frSF): |R| with R drawn once from the layer's init distribution (the buffer
      ``feedback_weight`` holds the magnitudes |R|);
    - ``random_batch`` (brSF): |R| with R redrawn at every training forward from a generator seeded by
      (seed, layer, ``feedback_step``), so draws are reproducible, resumable and identical on every rank.
    """

    name = "sign_symmetry"
    Options = SignSymmetryOptions
    reads_weight = True

    @property
    def random(self) -> bool:
        return self.options.magnitude in ("random_fixed", "random_batch")

    @property
    def buffers(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.options.magnitude == "random_batch":
            return ("feedback_weight", "feedback_step")
        return ("feedback_weight",) if self.random else ()

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        if self.random:
            weight = layer.weight.detach()
            layer.register_buffer("feedback_weight", draw_init_uniform(weight, self.layer_seed).abs_(),
                                  persistent=True)
        if self.options.magnitude == "random_batch":
            device = layer.weight.device
            layer.register_buffer("feedback_step", torch.zeros((), dtype=torch.int64, device=device))

    def redraw(self, layer: nn.Module) -> None:
        """brSF: advance ``feedback_step`` and redraw R from (seed, layer, step) on the layer's device."""
        layer.feedback_step += 1
        seed = (self.layer_seed + 7919 * int(layer.feedback_step)) % (2**62)
        fresh = draw_init_uniform(layer.feedback_weight, seed, device=layer.feedback_weight.device)
        with torch.no_grad():
            layer.feedback_weight.copy_(fresh.abs_())

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        if advance and self.options.magnitude == "random_batch":
            self.redraw(layer)
        w = weight.detach()
        return MAGNITUDES[self.options.magnitude](self, layer, w, torch.sign(w))
