"""B's own optimiser state for learned feedback (Kolen-Pollack): the step of torch's SGD or Adam/AdamW applied to the
feedback weight B with W's gradient, B's own momentum / moment buffers and B's own decay.

The optimiser is recognised by the keys of W's param group (torch's ``SGD``: ``momentum``, ``dampening``,
``nesterov``; ``Adam`` / ``AdamW``: ``betas``, ``amsgrad``, ``decoupled_weight_decay``); any other is refused. The
buffers live on the layer (registered empty by the rule, filled at the first step, saved and loaded with the model),
so B's update resumes exactly and is identical on every DDP rank (g is the all-reduced gradient)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.scratch import scratch_like
from biocircuits.errors import ConfigError

# buffers of B's optimiser state, registered empty (shape (0,)) at conversion and sized at the first step
STATE_BUFFERS = ("feedback_momentum", "feedback_exp_avg", "feedback_exp_avg_sq")


def _filled(layer: nn.Module, name: str, like: Tensor) -> tuple[Tensor, bool]:
    """Buffer ``name`` of ``layer``, allocated as zeros shaped like ``like`` if still empty; (buffer, was empty)."""
    held = getattr(layer, name)
    if held.shape == like.shape:
        return held, False
    setattr(layer, name, torch.zeros_like(like))
    return getattr(layer, name), True


def _update(grad: Tensor, feedback: Tensor, decay: float, maximize: bool, written: bool) -> Tensor:
    """u_t = (-)g_t + lambda_B B_t in the shared scratch buffer (no new weight-sized tensor); g_t itself when it needs
    no change and the caller will not write to u (``written``: Nesterov adds mu m_t to it)."""
    if not maximize and decay == 0.0:
        return scratch_like(feedback).copy_(grad) if written else grad
    update = scratch_like(feedback)
    if maximize:
        torch.neg(grad, out=update)
        return update.add_(feedback, alpha=decay) if decay != 0.0 else update
    return torch.add(grad, feedback, alpha=decay, out=update)


@torch.no_grad()
def sgd_step(layer: nn.Module, feedback: Tensor, grad: Tensor, group: dict[str, Any], lr: float, decay: float) -> None:
    """torch's SGD step on B with its own momentum buffer m (buffer ``feedback_momentum``):

        u_t = g_t + lambda_B B_t                      (g_t := -g_t when ``maximize``)
        m_t = u_t  (first step),   m_t = mu m_(t-1) + (1 - dampening) u_t  (after)
        B_(t+1) = B_t - eta_B (u_t + mu m_t   if nesterov   else   m_t)

    with eta_B = ``lr``, lambda_B = ``decay``, mu, dampening and nesterov from W's param group; mu = 0: B_(t+1) =
    B_t - eta_B u_t. Shapes: B, g, m like W."""
    mu = float(group.get("momentum", 0.0))
    update = _update(grad, feedback, decay, group.get("maximize", False), mu != 0.0 and group.get("nesterov", False))
    if mu != 0.0:
        momentum, first = _filled(layer, "feedback_momentum", feedback)
        if first:
            momentum.copy_(update)
        else:
            momentum.mul_(mu).add_(update, alpha=1.0 - float(group.get("dampening", 0.0)))
        update = update.add_(momentum, alpha=mu) if group.get("nesterov", False) else momentum
    feedback.add_(update, alpha=-lr)


@torch.no_grad()
def adam_step(layer: nn.Module, feedback: Tensor, grad: Tensor, group: dict[str, Any], lr: float, decay: float) -> None:
    """torch's Adam / AdamW step on B with its own moments m, v (buffers ``feedback_exp_avg``,
    ``feedback_exp_avg_sq``) and step count t (``feedback_updates``, already advanced):

        g_t := -g_t when ``maximize``;   AdamW: B_t := (1 - eta_B lambda_B) B_t;   Adam: g_t := g_t + lambda_B B_t
        m_t = beta1 m_(t-1) + (1 - beta1) g_t,     v_t = beta2 v_(t-1) + (1 - beta2) g_t^2     (m_0 = v_0 = 0)
        B_(t+1) = B_t - eta_B / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    with eta_B = ``lr``, lambda_B = ``decay``, betas and eps from W's param group. With AdamW, r = 1 and
    lambda_B = lambda, B's moments equal W's (the same g), so B and W take the same adaptive step and W - B shrinks
    by (1 - eta lambda) per step."""
    beta1, beta2 = (float(b) for b in group["betas"])
    step = int(layer.feedback_updates)
    grad = grad.neg() if group.get("maximize", False) else grad
    if decay != 0.0:
        if group.get("decoupled_weight_decay", False):
            feedback.mul_(1.0 - lr * decay)
        else:
            grad = grad.add(feedback, alpha=decay)
    exp_avg, _ = _filled(layer, "feedback_exp_avg", feedback)
    exp_avg_sq, _ = _filled(layer, "feedback_exp_avg_sq", feedback)
    exp_avg.lerp_(grad, 1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    denom = torch.sqrt(exp_avg_sq, out=scratch_like(feedback)).div_(math.sqrt(1.0 - beta2**step))
    denom.add_(float(group["eps"]))
    feedback.addcdiv_(exp_avg, denom, value=-lr / (1.0 - beta1**step))


Step = Callable[[nn.Module, Tensor, Tensor, dict[str, Any], float, float], None]
# B's step, by the optimiser W's param group belongs to
STEPS: dict[str, Step] = {"sgd": sgd_step, "adam": adam_step}


def optimizer_kind(group: dict[str, Any], where: str) -> str:
    """Which of [`STEPS`][biocircuits.feedback.rules.feedback_optimizer.STEPS] W's param group is (by its keys); an
    error naming ``where`` for any other."""
    keys = set(group)
    if {"momentum", "dampening", "nesterov"} <= keys and "betas" not in keys:
        return "sgd"
    if {"betas", "eps", "amsgrad", "decoupled_weight_decay"} <= keys:
        if group["amsgrad"]:
            raise ConfigError(
                f"{where}: kolen_pollack gives B its own Adam state, without amsgrad",
                key="optim",
                given="amsgrad=True",
                suggestion="use Adam or AdamW without amsgrad",
            )
        return "adam"
    raise ConfigError(
        f"{where}: kolen_pollack gives B its own optimiser state for torch's SGD, Adam and AdamW only",
        key="optim",
        expected="torch.optim.SGD, Adam or AdamW",
        given=", ".join(sorted(k for k in keys if k != "params")),
        suggestion="train this layer with SGD, Adam or AdamW",
    )
