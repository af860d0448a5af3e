"""DDP under ``torchrun``: process group set-up (nccl on GPU, gloo on CPU), this process's rank, metric
reduction."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from biocircuits.core import constraint_buffer_names
from biocircuits.phases.transforms.streams import gather_rows, scatter_rows, stream_buffer_names


@dataclass
class DistInfo:
    """This process's place among the DDP processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """This process's rank: from the initialised default process group, else from the environment as torchrun
    sets it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), else rank 0 of 1."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), local)


def setup(device_kind: str) -> DistInfo:
    """Initialise the default process group when started by torchrun (``WORLD_SIZE`` > 1); else one process."""
    info = current()
    if not info.enabled:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def teardown() -> None:
    """Destroy the default process group if one is up (the CLI calls this once, on exit)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a list of numbers over all ranks (identity in one process)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if any rank's ``flag`` is true (e.g. a stop signal seen by one process)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


@torch.no_grad()
def ranks_identical(module: torch.nn.Module, info: DistInfo, device: torch.device) -> bool:
    """True when every rank holds bit-identical parameters and constraint buffers (compared through a
    float64 checksum of each tensor: its sum and its sum of squares)."""
    if not info.enabled:
        return True
    named = dict(module.named_buffers())
    per_rank = set(stream_buffer_names(module))  # each rank's own streams
    tensors = [p for p in module.parameters()] + [
        named[n] for n in constraint_buffer_names(module) if n not in per_rank
    ]
    sums = torch.stack([torch.stack([t.double().sum(), t.double().pow(2).sum()]) for t in tensors]).flatten()
    gathered = [torch.empty_like(sums) for _ in range(info.world)]
    dist.all_gather(gathered, sums.to(device))
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


@torch.no_grad()
def gather_streams(
    state: dict[str, torch.Tensor], names: list[str], errors: list[str], info: DistInfo
) -> dict[str, torch.Tensor]:
    """``state`` (a model state_dict) with each per-stream buffer in ``names`` holding the streams of every rank
    (global row r + W j = row j of rank r: [`gather_rows`][biocircuits.phases.transforms.streams.gather_rows]), those in
    ``errors`` divided by W (one-process units: each rank's mean loss carries 1 / its batch); identity in one
    process. Every rank must call it (a collective)."""
    if not info.enabled or not names:
        return state
    state = dict(state)
    for name in names:
        local = state[name].contiguous()
        parts = [torch.empty_like(local) for _ in range(info.world)]
        dist.all_gather(parts, local)
        state[name] = gather_rows(parts)
        if name in errors:
            state[name] = state[name] / info.world
    return state


def scatter_streams(
    state: dict[str, torch.Tensor], names: list[str], errors: list[str], info: DistInfo
) -> dict[str, torch.Tensor]:
    """The inverse of [`gather_streams`][biocircuits.train.distributed.gather_streams]: each per-stream buffer of a
    loaded ``state`` cut to this rank's rows, errors scaled back by W (on any number of processes)."""
    if not info.enabled or not names:
        return state
    state = dict(state)
    for name in names:
        if name in state and state[name].dim() > 1:
            state[name] = scatter_rows(state[name], info.rank, info.world)
            if name in errors:
                state[name] = state[name] * info.world
    return state
