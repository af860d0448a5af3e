"""Data loaders with an exactly resumable, DDP-aware sampler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (a permutation seeded by seed + epoch, rank r takes every world-th index) that can
    start ``skip`` samples into this rank's share: resuming mid-epoch yields exactly the batches that remain."""

    def __init__(self, dataset: Dataset, world: int, rank: int, shuffle: bool, seed: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class StreamingDataset(IterableDataset):
    """A dataset that makes its own loader (e.g. [`ShardStream`][biocircuits.data.webdataset.ShardStream]): ``loader``
    returns (an iterable of batches whose ``len`` is the batches left in the epoch, an object with ``set_epoch``
    and a writable ``skip``, the samples of this rank's share already consumed), as a sampler has."""

    def loader(self, batch_size: int, *, world: int, rank: int, seed: int, spec: Any) -> tuple[Any, Any]:
        raise NotImplementedError


def make_loader(
    dataset: Dataset, batch_size: int, *, train: bool, world: int, rank: int, seed: int, spec
) -> tuple[Any, Any]:
    """A DataLoader over ``dataset`` with the per-rank ``batch_size`` and the data section's worker settings
    (``prefetch_factor`` when set and workers run). Training drops the last incomplete batch so every step has the
    same global batch. A [`StreamingDataset`][biocircuits.data.loaders.StreamingDataset] makes its own."""
    if isinstance(dataset, StreamingDataset):
        return dataset.loader(batch_size, world=world, rank=rank, seed=seed, spec=spec)
    prefetch = getattr(spec, "prefetch_factor", None)
    extra = {"prefetch_factor": prefetch} if prefetch and spec.num_workers > 0 else {}
    sampler = ResumableSampler(dataset, world, rank, shuffle=train, seed=seed)
    # the loader's own generator: starting an epoch's iterator (its workers' base seed) must not draw from the global
    # stream that dropout and a model's noise use, or a run resumed mid-epoch would draw one number more
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=train,
        num_workers=spec.num_workers,
        collate_fn=getattr(dataset, "collate", None),  # e.g. data.decode: gpu's encoded batches
        generator=torch.Generator().manual_seed(seed + rank),
        pin_memory=spec.pin_memory and torch.cuda.is_available(),
        persistent_workers=spec.persistent_workers and spec.num_workers > 0,
        **extra,
    )
    return loader, sampler
