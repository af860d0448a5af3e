"""The online learner: one trial run forward in time with eligibility traces and learning signals, its weight
update accumulated into ``.grad`` -- no backprop through time, so memory does not grow with the trial's length."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.errors import ConfigError

from .cells import cell_for
from .phases import time_phases_of
from .rules import OnlineRule
from .traces import EligibilityTrace, ReadoutFilter, contract, ones_column


def step_targets(targets: Tensor, steps: int) -> Tensor:
    """Targets per step [B, T] (class labels, -1 where no response is asked); a label per trial [B] is the
    target of the last step only."""
    if targets.dim() == 2 and targets.shape[1] == steps:
        return targets.long()
    if targets.dim() == 1:
        per_step = torch.full((targets.shape[0], steps), -1, dtype=torch.long, device=targets.device)
        per_step[:, -1] = targets
        return per_step
    raise ConfigError(
        "targets do not fit the sequence", expected=f"[batch, {steps}] or [batch]", given=tuple(targets.shape)
    )


def trial_scale(targets: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """c [B] of the sequence loss E = sum_{b,t} c_b [y_bt >= 0] CE(logits_bt, y_bt): each trial's mean over its
    target steps (y >= 0), then the mean over trials, c_b = 1 / (B max(n_b, 1)) with n_b the trial's target steps
    (the trainer's loss for [B, T, C] outputs)."""
    count = (targets >= 0).sum(1).clamp(min=1).to(dtype)
    return 1.0 / (count * targets.shape[0])


def output_error(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """dE/dlogits_t [B, n_out] = w_t (softmax(logits_t) - onehot(y_t)), w_t = c [y_t >= 0] [B] the step's weight."""
    onehot = F.one_hot(target.clamp(min=0), logits.shape[-1]).to(logits.dtype)
    return (torch.softmax(logits, dim=-1) - onehot) * weight[:, None]


@dataclass
class Synapses:
    """One weight matrix learned through a trace: its layer (a bias learns as a presynaptic column of ones), its
    trace, the readout filter of the trace, and the trial's update so far, ``grad`` [n_post, n_pre (+1)]."""

    layer: nn.Linear
    trace: EligibilityTrace
    filter: ReadoutFilter
    grad: Tensor

    def pre(self, activity: Tensor) -> Tensor:
        return ones_column(activity) if self.layer.bias is not None else activity


class OnlineLearner:
    """Trains the model that ``rule`` (an [`OnlineRule`][biocircuits.recurrent.rules.OnlineRule] on its readout) is part
    of. For each trial, at every step t (see [`traces`][biocircuits.recurrent.traces] for e_t):

        err_t = dE/dlogits_t                                     [B, n_out]   (output_error)
        L_t   = err_t B                                          [B, N]       (B [n_out, N]: W_out or fixed random)
        grad W  += sum_b L_t[b, j] F_kappa(e)_t[b, j, i]         (W_in and W_rec, b_rec as a column of ones)
        grad W_out += err_t^T F_kappa(y)_t,   grad b_out += sum_b err_t[b]      (exact, local to the readout)

    with y_t the readout's presynaptic activity and F_kappa the readout's filter (kappa = 0: none). The trial's
    update is the sum over t, accumulated into each parameter's ``.grad`` times ``scale`` (``update: per_trial``), or
    applied step by step (``update: per_step``, see ``accumulate``). Under ``phases:`` settings err_t, L_t and the
    traces they meet are what [`TrialSignals`][biocircuits.recurrent.signals.TrialSignals] says arrives at step t (late,
    noisy, quantised, filtered; stored, current or traced eligibility; interference on the next step's activity)."""

    def __init__(self, model: nn.Module, rule: OnlineRule) -> None:
        self.model, self.rule = model, rule
        self.cell = cell_for(model, rule.name)
        self.trace_class = rule.trace_class(self.cell.kind)

    def _synapses(self, batch: int, like: Tensor) -> list[Synapses]:
        out = []
        for layer in (self.model.input, self.model.recurrent):
            n_pre = layer.in_features + (layer.bias is not None)
            trace = self.trace_class(self.cell.dynamics, batch, layer.out_features, n_pre, like)
            out.append(
                Synapses(
                    layer, trace, ReadoutFilter(self.cell.readout_decay), like.new_zeros(layer.out_features, n_pre)
                )
            )
        return out

    @torch.no_grad()
    def accumulate(
        self, inputs: Tensor, targets: Tensor, scale: float = 1.0, on_step: Callable[[], None] | None = None
    ) -> tuple[Tensor, Tensor]:
        """One trial batch: inputs [B, T, n_in], targets [B, T] (or [B]); adds scale x the update to ``.grad``;
        returns (the sequence loss E of [`trial_scale`][biocircuits.recurrent.learner.trial_scale], logits
        [B, T, n_out]). With the rule's ``update: per_step`` each step's part of the update is written to ``.grad``
        at the end of its step and ``on_step`` (the optimiser's step and zero_grad) applies it there: step t + 1
        runs with the weights W_(t+1) = W_t - lr Delta_t (B = W_out too, for symmetric feedback), the traces and
        the learning signals as defined, from the activity the updated weights make."""
        batch, steps = inputs.shape[:2]
        per_step = self._per_step(on_step)
        targets = step_targets(targets, steps)
        scale_b = trial_scale(targets, inputs.dtype)
        readout = self.model.readout
        feedback = self.rule.learning_feedback(readout)  # B [n_out, N]
        syn_in, syn_rec = self._synapses(batch, inputs)
        out_filter = ReadoutFilter(self.cell.readout_decay)
        grad_out, grad_bias = torch.zeros_like(readout.weight), torch.zeros_like(readout.bias)
        state, loss = self.cell.start(batch, inputs), inputs.new_zeros(())
        logits = inputs.new_empty(batch, steps, readout.out_features)  # the outputs: the one tensor of size T
        phases = time_phases_of(self.model)
        trial = phases.trial(self.model, inputs) if phases is not None else None
        for t in range(steps):
            step = self.cell.advance(state, inputs[:, t], trial.interfering() if trial is not None else None)
            weight = scale_b * (targets[:, t] >= 0).to(inputs.dtype)
            err = output_error(step.logits, targets[:, t], weight)
            signal, activity = err @ feedback, out_filter(step.readout_pre)
            traces = [
                syn.filter(syn.trace.advance(syn.pre(pre), step.d))
                for syn, pre in ((syn_in, inputs[:, t]), (syn_rec, step.rec_pre))
            ]
            if trial is not None:  # the phases in time: what arrives at step t, and the traces it meets
                err, activity = trial.readout(err, activity)
                signal, traces = trial.hidden(signal, traces)
            syn_in.grad += contract(signal, traces[0])
            syn_rec.grad += contract(signal, traces[1])
            grad_out += err.T @ activity
            grad_bias += err.sum(0)
            loss += (F.cross_entropy(step.logits, targets[:, t].clamp(min=0), reduction="none") * weight).sum()
            state = step.state
            logits[:, t] = step.logits
            if per_step:  # the step's update, applied now; the accumulators start again
                self._write(syn_in, syn_rec, grad_out, grad_bias, scale)
                on_step()
                torch._foreach_zero_([syn_in.grad, syn_rec.grad, grad_out, grad_bias])
        if not per_step:
            self._write(syn_in, syn_rec, grad_out, grad_bias, scale)
        return loss, logits

    def _per_step(self, on_step: Callable[[], None] | None) -> bool:
        """Whether the rule updates per step (then ``on_step`` is required)."""
        per_step = self.rule.options.update == "per_step"
        if per_step and on_step is None:
            raise ValueError(f"{self.rule.name} with update: per_step applies each step's update: pass on_step")
        return per_step

    def _write(self, syn_in: Synapses, syn_rec: Synapses, grad_out: Tensor, grad_bias: Tensor, scale: float) -> None:
        """Add the trial's update to ``.grad`` (W_rec's diagonal masked when the model has no self-connections)."""
        mask = getattr(self.model, "self_mask", None)
        grads = [(self.model.readout.weight, grad_out), (self.model.readout.bias, grad_bias)]
        for syn in (syn_in, syn_rec):
            n = syn.layer.in_features
            weight_grad = syn.grad[:, :n]
            if syn is syn_rec and mask is not None:
                weight_grad = weight_grad * mask.to(weight_grad.dtype)
            grads.append((syn.layer.weight, weight_grad))
            if syn.layer.bias is not None:
                grads.append((syn.layer.bias, syn.grad[:, n]))
        for param, grad in grads:
            if param.requires_grad:
                param.grad = grad * scale if param.grad is None else param.grad.add_(grad, alpha=scale)


def online_learner(model: nn.Module) -> OnlineLearner | None:
    """The learner of a model whose readout learns with an online rule (``bc.apply`` with ``feedback.rule: eprop``
    or ``rflo``); None for every other model."""
    rule = getattr(getattr(model, "readout", None), "rule", None)
    return OnlineLearner(model, rule) if isinstance(rule, OnlineRule) else None
