"""The built-in plasticity rule: learning-rate scale, potentiation or depression only, frozen weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from .base import PLASTICITY, PlasticityRule


class UpdateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr_scale: float = Field(
        1.0,
        ge=0.0,
        le=1e6,
        description="Multiplies the matched weights' update: dW <- lr_scale dW (a slower or faster region or type).",
    )
    direction: Literal["both", "potentiation_only", "depression_only"] = Field(
        "both",
        description="`both`; `potentiation_only`: only updates that grow |W| (LTP); `depression_only`: only those "
        "that shrink it (LTD).",
    )
    frozen: bool = Field(False, description="dW <- 0: the matched weights are restored exactly after every step.")


def _potentiation_only(delta: Tensor, grows: Tensor | float) -> Tensor:
    return torch.where(delta * grows < 0, torch.zeros_like(delta), delta)


def _depression_only(delta: Tensor, grows: Tensor | float) -> Tensor:
    return torch.where(delta * grows > 0, torch.zeros_like(delta), delta)


DIRECTIONS: dict[str, Callable[[Tensor, Tensor | float], Tensor]] = {
    "both": lambda delta, grows: delta,
    "potentiation_only": _potentiation_only,
    "depression_only": _depression_only,
}


@PLASTICITY.register
class Update(PlasticityRule):
    """dW <- lr_scale * dW; ``potentiation_only``: dW <- 0 where dW * g < 0 (|W| may only grow, LTP);
    ``depression_only``: dW <- 0 where dW * g > 0 (LTD); ``frozen``: dW <- 0 (the weights are restored exactly)."""

    name = "update"
    Options = UpdateOptions

    def reshape(self, delta: Tensor, grows: Tensor | float) -> Tensor:
        if self.options.frozen:
            return torch.zeros_like(delta)
        scaled = delta if self.options.lr_scale == 1.0 else delta * self.options.lr_scale
        return DIRECTIONS[self.options.direction](scaled, grows)

    def static_factor(self) -> float | None:
        if self.options.frozen:
            return 0.0
        return self.options.lr_scale if self.options.direction == "both" else None

    @classmethod
    def changes_nothing(cls, options: UpdateOptions) -> bool:
        return options.lr_scale == 1.0 and options.direction == "both" and not options.frozen
