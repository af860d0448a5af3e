"""The update angle of a training step: how far the update the optimiser actually applies is from backprop's.

[`biocircuits.probe`][biocircuits.probes.alignment.probe] measures a rule's clean pathway on a probe batch. A step of
training under ``phases`` settings differs from it in time: the error may be late (``error_delay``), smeared over
stimuli (``error_filter``), paired with a trace of past activity (``backward_state: trace``), noisy, or sent through
activity that carries last step's feedback (``interference``). [`StepProbe`][biocircuits.probes.step.StepProbe]
compares, per converted layer,

    update_angle = angle(g_applied, g_bp)

where g_applied is the gradient of the layer's trainable weight that the optimiser receives at this step (after
every ``bc.bind`` pre-step hook: delays, sign-of-gradient...) and g_bp the exact backprop gradient of the same
step's loss -- the same weights, the same micro-batches (mean over them, as the step accumulates), with W in every
backward and no error transform or stream state (the clean, phase-separated network). Under DDP, g_bp is averaged
over the ranks like the applied gradient. Measuring leaves training untouched (buffers, RNG streams restored).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.core.interface import error_pathways_suspended
from biocircuits.core.layers import trainable_weight, unwrap
from biocircuits.feedback.convert import feedback_layers
from biocircuits.feedback.functional import save_weight_for_shadow, shadow_backprop

from .alignment import angle, preserved_state


class StepProbe:
    """Arm it before a step's micro-batches ([`arm`][biocircuits.probes.step.StepProbe.arm]), give it each micro-batch
    ([`add`][biocircuits.probes.step.StepProbe.add]); at that step's optimiser call (a pre-step hook registered after
    ``bc.bind``'s) it measures the update angles, kept in `angles` ({layer: degrees}) until the next
    [`arm`][biocircuits.probes.step.StepProbe.arm]."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    ) -> None:
        self.module, self.loss_fn = unwrap(model), loss_fn
        self.batches: list[tuple[Tensor, Tensor]] | None = None
        self.angles: dict[str, float] = {}
        self.handle = optimizer.register_step_pre_hook(self._measure)

    def arm(self) -> None:
        self.batches, self.angles = [], {}

    def add(self, inputs: Tensor, targets: Tensor) -> None:
        if self.batches is not None:
            self.batches.append((inputs, targets))

    def remove(self) -> None:
        self.handle.remove()

    def _measure(self, optimizer, args, kwargs) -> None:
        if not self.batches:
            return
        layers = [(n, m) for n, m in feedback_layers(self.module) if trainable_weight(m).grad is not None]
        applied = [trainable_weight(m).grad.detach().clone() for _, m in layers]
        exact = self.exact_gradients([trainable_weight(m) for _, m in layers])
        self.angles = {name: angle(a, b)[0] for (name, _), a, b in zip(layers, applied, exact, strict=True)}
        self.batches = None

    def exact_gradients(self, weights: list[Tensor]) -> list[Tensor]:
        """d(mean over the armed micro-batches of the loss)/d(weights) by exact backprop on the clean network."""
        total = [torch.zeros_like(w) for w in weights]
        n = len(self.batches)
        with preserved_state(self.module), error_pathways_suspended(self.module), torch.enable_grad():
            for x, y in self.batches:
                with save_weight_for_shadow():
                    loss = self.loss_fn(self.module(x).float(), y) / n
                with shadow_backprop():
                    grads = torch.autograd.grad(loss, weights, allow_unused=True)
                for t, g in zip(total, grads, strict=True):
                    if g is not None:
                        t.add_(g)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for t in total:
                dist.all_reduce(t)
                t.div_(dist.get_world_size())
        return total
