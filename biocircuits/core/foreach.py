"""In-place operations over lists of tensors (the after-step work of all layers at once)."""

from __future__ import annotations

import torch
from torch import Tensor


def mul_(tensors: list[Tensor], others: list[Tensor]) -> None:
    """tensors[i] *= others[i] in place, ``others`` broadcasting (e.g. per-unit sign masks). Fused with
    ``torch._foreach_mul_`` on CUDA; on the CPU foreach multiplication by broadcast tensors allocates a temporary
    per tensor, so each is multiplied in place in turn."""
    if tensors and tensors[0].is_cuda:
        torch._foreach_mul_(tensors, others)
    else:
        for t, o in zip(tensors, others, strict=True):
            t.mul_(o)
