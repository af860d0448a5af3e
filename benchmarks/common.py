"""Shared timing helpers for the benchmark scripts: interleaved runs, medians, memory per variant."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SavedBytes:
    """Bytes of distinct storages that autograd saves for backward during one step (CPU memory proxy)."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def pack(self, t: torch.Tensor):
        try:
            storage = t.untyped_storage()
            self.seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    @staticmethod
    def unpack(t):
        return t

    @property
    def total(self) -> int:
        return sum(self.seen.values())


def measure_memory(step: Callable[[], None], device: torch.device) -> float:
    """Peak GPU memory (bytes) of one step on CUDA; saved-for-backward bytes on the CPU."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync(device)
        return float(torch.cuda.max_memory_allocated(device))
    saved = SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        step()
    return float(saved.total)


def interleaved_medians(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int, reps: int
                        ) -> dict[str, float]:
    """Median seconds per call of each step, timing the variants in turn (in a fresh random order each round,
    so neither drift nor a variant's position in the round favours one)."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    order = random.Random(0)
    names = list(steps)
    for _ in range(reps):
        order.shuffle(names)
        for name in names:
            fn = steps[name]
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
