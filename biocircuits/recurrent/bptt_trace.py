"""``backward_state: trace`` under backprop through time (``rate_rnn`` with ``bp``, ``fa``, ``sign_symmetry``...):
every weight update pairs the error at its units with a trace of its presynaptic activity over the trial's steps,

    grad W = sum_t delta_t xbar_t^T,     xbar_t = lam xbar_{t-1} + (1 - lam) x_t,   xbar_{-1} = 0,

instead of sum_t delta_t x_t^T (W_in: x_t = u_t; W_rec: x_t = r_t; W_out: x_t = its input at step t; a bias learns
from delta_t as before). The forward pass and the errors sent back (B^T delta) are unchanged. The traces start at zero
with each trial; they act through the feedback layers' ``presynaptic`` hook (the tensor grad_W pairs with delta)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.interface import attachments_of
from biocircuits.feedback.layers import FeedbackLayer

LAYERS = ("input", "recurrent", "readout")


class TrialRows:
    """The ``clock`` the feedback layers read: ``rows`` is the whole batch during a training forward, else None."""

    rows: slice | None = None


class TracedTrial:
    """Installs the presynaptic traces on a model's feedback layers (``install``) and runs them: a forward pre-hook
    on the root opens each training trial (rows set, traces reset), the root's forward hook closes it."""

    def __init__(self, lam: float) -> None:
        self.lam, self.clock, self.bars = lam, TrialRows(), {}
        self.handles: list[Any] = []

    def install(self, model: nn.Module) -> None:
        for name in LAYERS:
            layer = getattr(model, name)
            if isinstance(layer, FeedbackLayer):
                held = attachments_of(layer)
                held.clock, held.presynaptic = self.clock, self.presynaptic
        self.handles = [model.register_forward_pre_hook(self._open), model.register_forward_hook(self._close)]

    def remove(self, model: nn.Module) -> None:
        for h in self.handles:
            h.remove()
        for name in LAYERS:
            held = attachments_of(getattr(model, name))
            if held is not None and held.clock is self.clock:
                held.clock, held.presynaptic = None, None

    def _open(self, model: nn.Module, args: tuple) -> None:
        held = attachments_of(model)
        training = model.training and torch.is_grad_enabled() and not held.suspended
        self.clock.rows = slice(0, int(args[0].shape[0])) if training else None
        self.bars = {}

    def _close(self, model: nn.Module, args: tuple, out: Tensor) -> None:
        self.clock.rows = None

    @torch.no_grad()
    def presynaptic(self, layer: nn.Module, x: Tensor, rows: slice) -> Tensor:
        """xbar for the input ``x`` of one call: [B, n] (one step: the layer's trace advances once) or [B, T, n] (the
        readout over the whole trial: the recursion along T)."""
        lam, x = self.lam, x.detach()
        if x.dim() == 3:
            bars, bar = torch.empty_like(x), torch.zeros_like(x[:, 0])
            for t in range(x.shape[1]):
                bar = lam * bar + (1.0 - lam) * x[:, t]
                bars[:, t] = bar
            return bars
        bar = self.bars.get(id(layer))
        bar = (1.0 - lam) * x if bar is None else lam * bar + (1.0 - lam) * x
        self.bars[id(layer)] = bar
        return bar
