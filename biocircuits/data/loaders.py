"""Data loaders with an exactly resumable, DDP-aware sampler."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (a permutation seeded by seed + epoch, rank r takes every world-th index) that can
    start ``skip`` samples into this rank's share: resuming mid-epoch yields exactly the batches that remain."""

    def __init__(self, dataset: Dataset, world: int, rank: int, shuffle: bool, seed: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, world: int, rank: int, seed: int, spec
                ) -> tuple[DataLoader, ResumableSampler]:
    """A DataLoader over ``dataset`` with the per-rank ``batch_size`` and the data section's worker settings.
    Training drops the last incomplete batch so every step has the same global batch."""
    sampler = ResumableSampler(dataset, world, rank, shuffle=train, seed=seed)
    # the loader's own generator: starting an epoch's iterator (its workers' base seed) must not draw from the global
    # stream that dropout and a model's noise use, or a run resumed mid-epoch would draw one number more
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, drop_last=train, num_workers=spec.num_workers,
        generator=torch.Generator().manual_seed(seed + rank),
        pin_memory=spec.pin_memory and torch.cuda.is_available(),
        persistent_workers=spec.persistent_workers and spec.num_workers > 0,
    )
    return loader, sampler
