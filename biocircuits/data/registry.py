"""The dataset registry: a new dataset is one class with ``@register_dataset`` (that is, ``@DATASETS.register``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from torch.utils.data import Dataset

from biocircuits.core import Registry

from .adapt import adapt


@dataclass
class DataBundle:
    """Train and validation sets, the number of classes and one input's shape (C, H, W) or (features,)."""

    train: Dataset
    val: Dataset
    num_classes: int
    input_shape: tuple[int, ...]


class DataSettings(Protocol):
    """What a dataset reads from the experiment's ``data:`` section (``biocircuits.config.experiment.DataSpec``)."""

    name: str
    root: str | None
    download: bool
    val_fraction: float
    split_seed: int
    image_size: int | None
    channels: int | None
    resize: int | None
    shape: list[int]
    num_classes: int
    train_size: int
    val_size: int


class DatasetSource:
    """Builds a [`DataBundle`][biocircuits.data.registry.DataBundle] from the ``data:`` section."""

    name: ClassVar[str]

    def build(self, spec: DataSettings) -> DataBundle:
        raise NotImplementedError


DATASETS: Registry[type[DatasetSource]] = Registry("dataset")
register_dataset = DATASETS.register


def build_data(spec: DataSettings) -> DataBundle:
    """The [`DataBundle`][biocircuits.data.registry.DataBundle] for ``spec``, adapted to ``spec.channels`` /
    ``spec.resize`` when they are set."""
    bundle = DATASETS.get(spec.name)().build(spec)
    return adapt(bundle, spec.channels, spec.resize)
