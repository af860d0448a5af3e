"""Reusable scratch memory: one flat buffer per (thread, device, dtype, slot), handed out as views shaped like a
tensor, so per-step temporaries (an optimiser's u_t, an error transform's intermediate) do not allocate a new large
tensor every step (on the CPU a fresh allocation of a few MB costs page faults on top of the pass that fills it); and
``kept_like``, a tensor kept across steps under a key (a snapshot buffer)."""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import Tensor

_held = threading.local()  # .buffers: {(device, dtype, slot): flat tensor}, one set per thread


def scratch_like(t: Tensor, slot: int = 0, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialised contiguous tensor shaped like ``t`` (in ``dtype``, default ``t``'s): a view of this thread's
    flat buffer for ``slot``, grown to the largest request. The view is valid until the next request for the same
    slot, device and dtype: fill it and use it within one function, never return or keep it. Every user writes the
    whole view before reading it, so its values are those of the out-of-place op it replaces, bit for bit."""
    buffers = getattr(_held, "buffers", None)
    if buffers is None:
        buffers = _held.buffers = {}
    key = (t.device, dtype or t.dtype, slot)
    flat = buffers.get(key)
    if flat is None or flat.numel() < t.numel():
        flat = buffers[key] = torch.empty(t.numel(), device=t.device, dtype=key[1])
    return flat[: t.numel()].view(t.shape)


def kept_like(store: dict[Any, Tensor], key: Any, t: Tensor) -> Tensor:
    """``store[key]``, an uninitialised tensor shaped like ``t`` (same dtype and device) kept across calls: made
    afresh only when ``t``'s shape, dtype or device changes, so a per-step copy into it allocates nothing."""
    held = store.get(key)
    if held is None or held.shape != t.shape or held.dtype != t.dtype or held.device != t.device:
        held = store[key] = torch.empty_like(t, memory_format=torch.contiguous_format)
    return held
