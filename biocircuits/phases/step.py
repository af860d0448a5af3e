"""The phase-separated training step: a forward phase (activity flows up), a backward phase (the error flows
down the feedback pathway of each converted layer) and an update phase (the optimiser step, with plasticity
and Dale hooks). Callbacks run at the end of each phase; probes, plots and bridges attach there.

Each step is one time bin of the parallel stimulus streams that the batch holds
([`biocircuits.phases.transforms.streams`][biocircuits.phases.transforms.streams]): what the ``phases:`` settings keep
between steps -- late errors, eligibility traces, filtered errors, the feedback signal left in the units -- advances
once per forward and backward phase of a training step and never in evaluation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class StepContext:
    """What one step has produced so far; callbacks read it (and may add to ``extra``)."""

    step: int
    inputs: Tensor | None = None
    targets: Tensor | None = None
    outputs: Tensor | None = None
    loss: Tensor | None = None
    grad_norm: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PhaseCallback:
    """Base class of phase callbacks; override any of the three hooks."""

    def on_forward_end(self, ctx: StepContext) -> None: ...

    def on_backward_end(self, ctx: StepContext) -> None: ...

    def on_update_end(self, ctx: StepContext) -> None: ...


class PhasedStep:
    """One optimiser step in three explicit phases (with gradient accumulation over micro-batches):

    ctx = step.forward(x, y)     # forward phase:  outputs, loss
    step.backward(ctx)           # backward phase: errors through B, gradients accumulate
    step.update(ctx)             # update phase:   clip, optimiser step (+ plasticity, Dale), zero grads
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        *,
        amp_dtype: torch.dtype | None = None,
        scaler: torch.amp.GradScaler | None = None,
        grad_clip: float | None = None,
        accum: int = 1,
        callbacks: Sequence[PhaseCallback] = (),
    ) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.amp_dtype, self.scaler, self.grad_clip, self.accum = amp_dtype, scaler, grad_clip, accum
        self.callbacks = list(callbacks)

    def _autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def forward(self, inputs: Tensor, targets: Tensor, step: int) -> StepContext:
        with self._autocast(inputs.device):
            outputs = self.model(inputs)
            loss = self.loss_fn(outputs, targets)
        ctx = StepContext(step, inputs, targets, outputs, loss)
        for cb in self.callbacks:
            cb.on_forward_end(ctx)
        return ctx

    def backward(self, ctx: StepContext, sync: bool = True) -> None:
        loss = ctx.loss / self.accum
        no_sync = getattr(self.model, "no_sync", None)
        guard = no_sync() if (not sync and no_sync is not None) else contextlib.nullcontext()
        with guard:
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if sync:
            for cb in self.callbacks:
                cb.on_backward_end(ctx)

    def update(self, ctx: StepContext) -> None:
        if self.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            ctx.grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for cb in self.callbacks:
            cb.on_update_end(ctx)
