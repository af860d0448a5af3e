"""Exponentiated gradient (Cornford et al. 2024): a multiplicative update that never changes a weight's sign."""

from __future__ import annotations

import torch

from biocircuits.core.foreach import mul_

from .base import ENFORCERS, DaleEnforcer, signed_weights


@ENFORCERS.register
class ExpGradient(DaleEnforcer):
    """The optimiser's additive update dW = W - W_old (the role of -lr * grad in plain EG) becomes

        W <- W_old * exp(s * dW),   i.e.  |W| <- |W_old| exp(-lr grad s)  under SGD,

    with s the Dale sign mask: no weight ever changes sign and zeros stay zero. Weight decay takes the exponentiated
    form: the optimiser's decay term in dW, -lr wd W_old, would act as exp(-lr wd |W_old|); it is replaced by
    exp(-lr wd), i.e. the exponent gets + lr wd (|W_old| - 1) (lr, wd: the param group's), so

        |W| <- |W_old| exp(-lr s grad) exp(-lr wd)      (SGD without momentum; AdamW's decoupled decay alike).

    With momentum or Adam's coupled decay the optimiser mixes the decay into its state, so only the current
    step's term is corrected. Runs over all layers at once (foreach ops)."""

    name = "exp_gradient"
    needs_snapshot = True

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step) -> None:
        weights = signed_weights(members)
        before = [step.weight_before(layer) for layer, _ in members]
        torch._foreach_sub_(weights, before)
        masked = []
        for member, weight in zip(members, weights, strict=True):  # s dW: negate the I columns (or multiply by s)
            runs = cls.cached_runs(member)
            if runs is None:
                masked.append((member, weight))
            for start, stop, sign in runs or ():
                if sign < 0:
                    weight[:, start:stop].neg_()
        if masked:
            mul_([w for _, w in masked], cls.cached_masks([m for m, _ in masked], [w for _, w in masked]))
        for (layer, _), weight, old in zip(members, weights, before, strict=True):
            group = step.group_of(layer.weight)
            decay = float(group.get("lr", 0.0)) * float(group.get("weight_decay", 0.0))
            if decay:  # exp(-lr wd |W_old|) -> exp(-lr wd)
                weight.add_(old.abs() - 1.0, alpha=decay)
        torch._foreach_exp_(weights)
        torch._foreach_mul_(weights, before)
