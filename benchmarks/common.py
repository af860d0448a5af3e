"""Shared helpers for the benchmark scripts: interleaved runs, medians, memory per variant, and the figure files
that result tables are written to."""

from __future__ import annotations

import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


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


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def clock_argument(parser: Any, use_with: str = "--threads 1") -> None:
    """The ``--clock wall|cpu`` option of the timing scripts (read it with ``CLOCKS[args.clock]``)."""
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help=f"cpu: CPU seconds of the process (steadier on a shared machine; use with {use_with})",
    )


def interleaved_times(
    steps: dict[str, Callable[[], None]],
    device: torch.device,
    warmup: int,
    reps: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds of every call of each step, round by round: the variants are timed in turn, in a fresh random order
    each round, so neither drift nor a variant's position in the round favours one. Entry i of every list comes
    from round i (pair them for ratios). ``clock``: wall time by default; ``time.process_time`` (CPU seconds of
    the process) is much less sensitive to other jobs on a shared machine when torch runs one thread."""
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
            t0 = clock()
            fn()
            sync(device)
            times[name].append(clock() - t0)
    return times


def interleaved_medians(
    steps: dict[str, Callable[[], None]],
    device: torch.device,
    warmup: int,
    reps: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per call of each step over interleaved rounds (``interleaved_times``)."""
    times = interleaved_times(steps, device, warmup, reps, clock)
    return {k: statistics.median(v) for k, v in times.items()}


def bootstrap_ratio_ci(
    num: list[float], den: list[float], draws: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the ratio of medians median(num) / median(den), resampling the interleaved
    rounds with replacement (round i's num and den stay paired, as they were timed in the same round)."""
    rng = random.Random(seed)
    rounds = range(len(num))
    ratios = []
    for _ in range(draws):
        pick = rng.choices(rounds, k=len(num))
        ratios.append(statistics.median(num[i] for i in pick) / statistics.median(den[i] for i in pick))
    ratios.sort()
    tail = (1.0 - level) / 2
    return ratios[int(tail * draws)], ratios[min(draws - 1, int((1.0 - tail) * draws))]


def synthetic_batch(args, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded ImageNet-shaped batch (args.batch x 3 x args.size x args.size, 1000 classes) on ``device``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
    if args.channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x, torch.randint(0, 1000, (args.batch,), generator=gen).to(device)


def training_step(run: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, amp: bool) -> None:
    """One full step: zero grads, forward (bf16 autocast if ``amp``), cross-entropy, backward, optimiser step."""
    opt.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext():
        loss = nn.functional.cross_entropy(run(x), y)
    loss.backward()
    opt.step()


FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that produced a table: ``python benchmarks/<script>`` and its arguments."""
    return f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])


def write_figures(name: str, results: Any, text: str) -> None:
    """``docs/figures/<name>.json`` (``results``) and ``<name>.md`` (the markdown ``text``)."""
    (FIGURES / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (FIGURES / f"{name}.md").write_text(text)
