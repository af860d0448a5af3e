"""DDP under ``torchrun``: process group set-up (nccl on GPU, gloo on CPU), rank helpers, metric reduction."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_kind: str) -> DistInfo:
    """Initialise the default process group when started by torchrun (``WORLD_SIZE`` > 1); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


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


def rule_buffer_names(module: torch.nn.Module) -> list[str]:
    """Buffers that biocircuits keeps identical on every rank by construction (seeded feedback weights,
    counters, Dale signs, delay queues and traces fed by all-reduced gradients): DDP need not broadcast them."""
    from biocircuits.dale.enforce import SignedMagnitude
    from biocircuits.feedback.layers import FeedbackLayer
    names = []
    for prefix, owner in module.named_modules():
        if isinstance(owner, FeedbackLayer | SignedMagnitude) or hasattr(owner, "residual_sign"):
            for name, _ in owner.named_buffers(recurse=False):
                if isinstance(owner, FeedbackLayer | SignedMagnitude) or name == "residual_sign":
                    names.append(f"{prefix}.{name}" if prefix else name)
    return names


@torch.no_grad()
def ranks_identical(module: torch.nn.Module, info: DistInfo, device: torch.device) -> bool:
    """True when every rank holds bit-identical parameters and feedback/Dale buffers (compared through a
    float64 checksum of each tensor: its sum and its sum of squares)."""
    if not info.enabled:
        return True
    named = dict(module.named_buffers())
    tensors = [p for p in module.parameters()] + [named[n] for n in rule_buffer_names(module)]
    sums = torch.stack([torch.stack([t.double().sum(), t.double().pow(2).sum()]) for t in tensors]).flatten()
    gathered = [torch.empty_like(sums) for _ in range(info.world)]
    dist.all_gather(gathered, sums.to(device))
    return all(torch.equal(gathered[0], g) for g in gathered[1:])
