"""Kolen-Pollack learning of the feedback weights (Kolen & Pollack 1994; Akrout et al. 2019, "Deep learning without
weight transport"): B learns with the same local update as W, with its own optimiser state and its own decay, so
with decay W and B converge."""

from __future__ import annotations

import warnings

import torch
from pydantic import Field
from torch import nn

from biocircuits.core.interface import StepState, attachments_of
from biocircuits.errors import ConfigError

from .feedback_alignment import FeedbackAlignment, FeedbackAlignmentOptions, weight_feedback_angle
from .feedback_optimizer import STATE_BUFFERS, STEPS, optimizer_kind
from .registry import register_rule


class KolenPollackOptions(FeedbackAlignmentOptions):
    lr_scale: float = Field(
        1.0,
        ge=0.0,
        le=1e3,
        description="r: B's learning rate as a multiple of W's (B takes the step r eta on W's gradient).",
    )
    weight_decay: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="lambda_B, B's weight decay; null: W's (then W - B shrinks by (1 - eta lambda) per step).",
    )


@register_rule
class KolenPollack(FeedbackAlignment):
    """B starts as feedback alignment's (``init``, buffer ``feedback_weight``) and, after every optimiser step, takes
    the step of W's optimiser on the same local gradient g_t = delta x^T that W received (``weight.grad``), with B's
    *own* optimiser state, learning rate r eta and decay lambda_B (r = ``lr_scale``, lambda_B = ``weight_decay``,
    default W's). For plain SGD:

        W_(t+1) = W_t - eta (g_t + lambda W_t),        B_(t+1) = B_t - r eta (g_t + lambda_B B_t),

    so with r = 1 and lambda_B = lambda, W - B shrinks by (1 - eta lambda) per step whatever g does: W and B converge
    (Akrout et al.'s Kolen-Pollack). SGD momentum gives B its own buffer m_B (m_B,t = mu m_B,(t-1) + u_t,
    u_t = g_t + lambda_B B_t), so D = W - B follows the gradient-free heavy-ball recursion
    D_(t+1) = D_t - eta e_t, e_t = mu e_(t-1) + lambda D_t; Adam and AdamW give B its own moments (AdamW: the same
    adaptive step as W's, W - B shrinks by (1 - eta lambda) per step). The step and its buffers are in
    [`biocircuits.feedback.rules.feedback_optimizer`][biocircuits.feedback.rules.feedback_optimizer] (torch's SGD, Adam
    and AdamW; other optimisers are refused). With lambda_B = 0 nothing pulls B to W: B = B_0 + (W - W_0) under SGD, and
    a warning says so.

    What the Dale enforcer or a plasticity rule then does to W is not copied to B (B learns from g alone). A Dale
    reparametrisation (``enforce: abs | softplus``) trains a latent V, not W, so its gradient is not delta x^T:
    refused. eta and lambda are read from W's param group at every step (schedules included); B changes only in the
    after-step hook (``bc.bind``), from the all-reduced gradient, so it is exact on resume and identical on every
    DDP rank."""

    name = "kolen_pollack"
    Options = KolenPollackOptions
    learns_feedback = True
    lazy_buffers = STATE_BUFFERS

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        device = layer.weight.device
        self.register_buffer(layer, "feedback_updates", torch.zeros((), dtype=torch.int64, device=device))
        for name in STATE_BUFFERS:  # B's optimiser state, sized at the first step that needs it
            self.register_buffer(layer, name, torch.empty(0, dtype=layer.weight.dtype, device=device))
        self._warned = False

    @classmethod
    def attach_group(cls, members, model: nn.Module) -> None:
        super().attach_group(members, model)
        for name, layer, _ in members:
            held = attachments_of(layer)
            if held is not None and held.dale is not None and held.dale.reparametrises:
                raise ConfigError(
                    f"{name}: kolen_pollack needs the optimiser to train W itself: with a Dale "
                    "reparametrisation W = s f(V) the gradient it sees is dL/dV, not delta x^T",
                    key="dale.enforce",
                    given="a reparametrised weight",
                    has_given=True,
                    suggestion="use dale.enforce: project or exp_gradient with kolen_pollack",
                )

    def plain_checkpoint_loaded(self, layer: nn.Module) -> None:
        """A plain checkpoint brings a new W and no B: B's optimiser state starts afresh too."""
        super().plain_checkpoint_loaded(layer)
        layer.feedback_updates.zero_()
        for name in STATE_BUFFERS:
            setattr(layer, name, getattr(layer, name).new_empty(0))

    def report(self, layer: nn.Module) -> dict[str, float]:
        return {"weight_feedback_angle": weight_feedback_angle(layer)}

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step: StepState) -> None:
        """B's step on every layer whose W got a gradient (the optimiser skipped the others: their B rests too). The
        optimiser is checked for every layer before any B moves, the step counters advance in one foreach op, then
        each layer's B steps in turn: all passes of one layer while its B, g and m are in cache (the same passes as
        foreach ops over all layers, one op after another, ran slower on the CPU: ``benchmarks/floors.py``)."""
        todo = []
        for layer, rule in members:
            weight = layer.weight
            if weight.grad is None:
                continue
            group = step.group_of(weight)
            where = layer.qualname or type(layer).__name__
            kind = optimizer_kind(group, where)
            lam = float(group.get("weight_decay", 0.0))
            lam_b = lam if rule.options.weight_decay is None else rule.options.weight_decay
            rule.warn_without_decay(lam_b, where)
            todo.append((layer, STEPS[kind], group, rule.options.lr_scale * float(group.get("lr", 0.0)), lam_b))
        if todo:
            torch._foreach_add_([layer.feedback_updates for layer, *_ in todo], 1)
        for layer, take_step, group, lr, lam_b in todo:
            grad = layer.weight.grad.detach().to(layer.feedback_weight.dtype)
            take_step(layer, layer.feedback_weight, grad, group, lr, lam_b)

    def warn_without_decay(self, decay: float, where: str) -> None:
        if decay == 0.0 and not self._warned:
            self._warned = True
            warnings.warn(
                f"{where}: kolen_pollack with weight decay 0: nothing pulls B towards W (W - B "
                "stays at its initial value under SGD); set optim.weight_decay > 0 or the rule's "
                "weight_decay for W and B to converge",
                stacklevel=2,
            )
