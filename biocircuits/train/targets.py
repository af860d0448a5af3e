"""Loss and accuracy by the shape of the model's output: one entry per output rank in
[`TARGETS`][biocircuits.train.targets.TARGETS].

- logits [B, C] with targets [B]: cross-entropy and top-k accuracy per sample (the classifiers).
- logits [B, T, C] with targets [B, T] (sequence models): targets are -1 at the steps that carry no target (outside
  a trial's response period). A trial's loss is the mean cross-entropy over its target steps,

      L_b = sum_t m_bt CE(z_bt, y_bt) / max(sum_t m_bt, 1),    m_bt = [y_bt >= 0],

  and a batch's loss the mean of L_b over trials. A trial's decision is the mean of its logits over its target
  steps, zbar_b = sum_t m_bt z_bt / sum_t m_bt; it is top-k correct when its target (the class of its target
  steps) is among the k largest entries of zbar_b. A trial without target steps counts as wrong, with loss 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class TargetKind:
    """How one output rank is scored: ``loss(logits, targets, label_smoothing, reduction)`` (``mean`` over
    samples or their ``sum``) and ``decision(logits, targets) -> (scores [B, C], labels [B])`` for top-k."""

    loss: Callable[[Tensor, Tensor, float, str], Tensor]
    decision: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _sample_loss(logits: Tensor, targets: Tensor, label_smoothing: float, reduction: str) -> Tensor:
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing, reduction=reduction)


def _step_mask(targets: Tensor) -> tuple[Tensor, Tensor]:
    """(m [B, T] as float, the number of target steps per trial clamped to >= 1 [B])."""
    mask = (targets >= 0).float()
    return mask, mask.sum(1).clamp(min=1.0)


def _sequence_loss(logits: Tensor, targets: Tensor, label_smoothing: float, reduction: str) -> Tensor:
    mask, count = _step_mask(targets)
    per_step = F.cross_entropy(
        logits.float().flatten(0, 1),
        targets.flatten(),
        ignore_index=-1,
        label_smoothing=label_smoothing,
        reduction="none",
    ).view_as(mask)
    per_trial = (per_step * mask).sum(1) / count
    return per_trial.sum() if reduction == "sum" else per_trial.mean()


def _sequence_decision(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    mask, count = _step_mask(targets)
    scores = (logits.float() * mask.unsqueeze(-1)).sum(1) / count.unsqueeze(-1)
    labels = torch.where(mask.sum(1) > 0, targets.max(1).values, -1)  # -1 matches no class: a wrong trial
    return scores, labels


TARGETS: dict[int, TargetKind] = {
    2: TargetKind(_sample_loss, lambda logits, targets: (logits, targets)),
    3: TargetKind(_sequence_loss, _sequence_decision),
}


def target_kind(logits: Tensor) -> TargetKind:
    """The [`TargetKind`][biocircuits.train.targets.TargetKind] for ``logits``'s rank; a ValueError naming the ranks
    handled otherwise."""
    kind = TARGETS.get(logits.dim())
    if kind is None:
        raise ValueError(
            f"model output of shape {tuple(logits.shape)}: the trainer scores outputs of rank "
            f"{sorted(TARGETS)} ([batch, classes] or [batch, time, classes])"
        )
    return kind


def task_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``logits`` against ``targets`` for the output's rank (see the module docstring)."""
    return target_kind(logits).loss(logits, targets, label_smoothing, reduction)


def topk_correct(logits: Tensor, targets: Tensor, ks: tuple[int, ...] = (1, 5)) -> list[float]:
    """Number of samples (trials) whose target is among the top-k scores, for each k (capped at the class count)."""
    scores, labels = target_kind(logits).decision(logits, targets)
    kmax = min(max(ks), scores.shape[1])
    hit = scores.topk(kmax, dim=1).indices.eq(labels.view(-1, 1))
    return [float(hit[:, : min(k, kmax)].any(1).sum()) for k in ks]
