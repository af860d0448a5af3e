"""Evaluation (loss, top-1, top-5), reduced over every rank."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.data import DataLoader

from .distributed import DistInfo, all_reduce_sum
from .targets import task_loss, topk_correct

__all__ = ["evaluate", "topk_correct"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    info: DistInfo,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (in %) over the loader, summed over all ranks (per sample, or
    per trial for sequence outputs: [`targets`][biocircuits.train.targets])."""
    was_training = model.training
    model.eval()
    loss_sum = c1 = c5 = n = 0.0
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = model(x)
            loss_sum += float(task_loss(logits, y, reduction="sum"))
            a1, a5 = topk_correct(logits, y)
            c1, c5, n = c1 + a1, c5 + a5, n + len(y)
    finally:
        model.train(was_training)
    loss_sum, c1, c5, n = all_reduce_sum([loss_sum, c1, c5, n], info, device)
    return {"loss": loss_sum / max(n, 1), "acc1": 100 * c1 / max(n, 1), "acc5": 100 * c5 / max(n, 1), "count": n}
