"""The training step of a model that learns with an online rule: the forward phase runs the trial through
[`OnlineLearner`][biocircuits.recurrent.learner.OnlineLearner], which fills ``.grad`` as it goes; the backward phase has
nothing left to do; the update phase (optimiser, plasticity and Dale hooks, callbacks) is the usual one."""

from __future__ import annotations

from torch import Tensor, nn

from biocircuits.errors import ConfigError
from biocircuits.phases.step import PhasedStep, StepContext

from .learner import OnlineLearner, online_learner


class OnlineStep(PhasedStep):
    """[`PhasedStep`][biocircuits.phases.step.PhasedStep] whose forward phase is the online learner's trial (loss,
    outputs, gradients over ``accum`` micro-batches) and whose backward phase only calls the phase callbacks."""

    def __init__(self, base: PhasedStep, learner: OnlineLearner) -> None:
        super().__init__(
            base.model,
            base.optimizer,
            base.loss_fn,
            amp_dtype=base.amp_dtype,
            scaler=base.scaler,
            grad_clip=base.grad_clip,
            accum=base.accum,
            callbacks=base.callbacks,
        )
        self.learner = learner

    def forward(self, inputs: Tensor, targets: Tensor, step: int) -> StepContext:
        loss, outputs = self.learner.accumulate(inputs, targets, scale=1.0 / self.accum, on_step=self._step_now)
        ctx = StepContext(step, inputs, targets, outputs, loss)
        for cb in self.callbacks:
            cb.on_forward_end(ctx)
        return ctx

    def _step_now(self) -> None:
        """The optimiser's step within a trial (the rule's ``update: per_step``): the update phase that follows the
        trial finds no gradient left (a no-op for the optimiser; the hooks and callbacks run as usual)."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, ctx: StepContext, sync: bool = True) -> None:
        if sync:
            for cb in self.callbacks:
                cb.on_backward_end(ctx)


def online_step(phased: PhasedStep, module: nn.Module) -> PhasedStep:
    """``phased`` itself, or an [`OnlineStep`][biocircuits.recurrent.step.OnlineStep] around it when ``module`` learns
    with an online rule (``rflo``, ``eprop``): the one place where the training step changes for them (one process,
    float32, no autocast)."""
    learner = online_learner(module)
    if learner is None:
        return phased
    if isinstance(phased.model, nn.parallel.DistributedDataParallel):
        raise ConfigError(
            "online rules (rflo, eprop) train on one process",
            key="feedback.rule",
            given=learner.rule.name,
            suggestion="run without torchrun, or use a BPTT rule",
        )
    if phased.scaler is not None or phased.amp_dtype is not None:
        raise ConfigError(
            "online rules (rflo, eprop) run in float32", key="train.amp", given="on", suggestion="set train.amp: off"
        )
    if learner.rule.options.update == "per_step" and phased.grad_clip is not None:
        raise ConfigError(
            "with update: per_step the optimiser steps within the trial, where no gradient clipping acts",
            key="train.grad_clip",
            given=phased.grad_clip,
            suggestion="remove train.grad_clip, or use update: per_trial",
        )
    return OnlineStep(phased, learner)
