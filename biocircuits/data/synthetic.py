"""Synthetic data: random tensors of a given shape with labels from a fixed random linear teacher."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from .registry import DataBundle, DatasetSource, register_dataset


@register_dataset
class Synthetic(DatasetSource):
    """``train_size`` + ``val_size`` samples x ~ N(0, 1) of ``shape``; label = argmax of a random linear map of
    x (so the task is learnable). Seeded by ``split_seed``."""

    name = "synthetic"

    def build(self, spec) -> DataBundle:
        gen = torch.Generator().manual_seed(spec.split_seed)
        n = spec.train_size + spec.val_size
        x = torch.randn(n, *spec.shape, generator=gen)
        teacher = torch.randn(x[0].numel(), spec.num_classes, generator=gen)
        y = (x.flatten(1) @ teacher).argmax(1)
        train = TensorDataset(x[: spec.train_size], y[: spec.train_size])
        val = TensorDataset(x[spec.train_size :], y[spec.train_size :])
        return DataBundle(train, val, spec.num_classes, tuple(spec.shape))

    def peek(self, spec) -> tuple[tuple[int, ...], int]:
        return tuple(spec.shape), spec.num_classes
