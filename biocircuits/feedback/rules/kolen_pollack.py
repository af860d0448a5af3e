"""Kolen-Pollack learning of the feedback weights (Kolen & Pollack 1994; Akrout et al. 2019, "Deep learning without
weight transport"): B learns with the same update as W, so W and B converge."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from biocircuits.core.interface import StepState
from biocircuits.core.layers import trainable_weight

from .feedback_alignment import FeedbackAlignment, FeedbackAlignmentOptions, weight_feedback_angle
from .registry import register_rule


class KolenPollackOptions(FeedbackAlignmentOptions):
    lr_scale: float = Field(1.0, ge=0.0, le=1e3)
    weight_decay: float | None = Field(None, ge=0.0, le=1.0)


@register_rule
class KolenPollack(FeedbackAlignment):
    """B starts as feedback alignment's (``init``, buffer ``feedback_weight``) and, after every optimiser step,
    learns with W's own update. For plain SGD with learning rate eta and weight decay lambda, or a decoupled decay
    (AdamW), the step is W_{t+1} = W_t + dW_t with dW_t = -eta (g_t + lambda W_t) (g_t = delta x^T, or AdamW's
    adaptive step), and B takes

        B_{t+1} = B_t + r (dW_t + eta lambda W_t) - r eta lambda_B B_t  =  B_t - r eta (g_t + lambda_B B_t),

    the same local update delta x^T as W with B's own decay (r = ``lr_scale``, lambda_B = ``weight_decay``, default
    W's). With r = 1 and lambda_B = lambda, B - W shrinks by (1 - eta lambda) per step: W and B converge (Akrout et
    al.'s Kolen-Pollack). With SGD momentum and coupled decay, W's past decay terms reach B's update through the
    momentum buffer, so B's update is not exactly the local one, but B - W still shrinks by (1 - eta lambda) every
    step. eta and lambda are read from the optimiser's param group at every step (schedules included). B changes
    only in the after-step hook (``bc.bind``), so it is exact on resume and identical on every DDP rank (it is
    computed from the all-reduced update)."""

    name = "kolen_pollack"
    Options = KolenPollackOptions
    needs_snapshot = True

    def report(self, layer: nn.Module) -> dict[str, float]:
        return {"weight_feedback_angle": weight_feedback_angle(layer)}

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step: StepState) -> None:
        for layer, rule in members:
            weight = trainable_weight(layer)
            group = step.group_of(weight)
            eta, lam = float(group.get("lr", 0.0)), float(group.get("weight_decay", 0.0))
            r = rule.options.lr_scale
            lam_b = lam if rule.options.weight_decay is None else rule.options.weight_decay
            before, feedback = weight_space(layer, step.weight_before(layer)), layer.feedback_weight
            feedback.mul_(1.0 - r * eta * lam_b)
            feedback.add_(layer.weight.detach() - before, alpha=r).add_(before, alpha=r * eta * lam)


def weight_space(layer: nn.Module, trainable: Tensor) -> Tensor:
    """W for a value of the layer's trainable tensor: itself, or the parametrisations applied to it (a Dale
    reparametrisation W = s f(V)); there the decay correction above is approximate (lambda acts on V)."""
    plist = getattr(getattr(layer, "parametrizations", None), "weight", None)
    if plist is None:
        return trainable
    for parametrization in plist:
        trainable = parametrization(trainable)
    return trainable
