"""The dataset registry: a new dataset is one class with ``@register_dataset`` (that is, ``@DATASETS.register``); a
user's own dataset needs none: ``data.name: "my_pkg.data:build"`` (see
[`biocircuits.data.plugin`][biocircuits.data.plugin])."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from torch.utils.data import Dataset

from biocircuits.core import Registry
from biocircuits.core.imports import is_import_path

from .adapt import adapt


@dataclass
class DataBundle:
    """Train and validation sets, the number of classes and one input's shape (C, H, W) or (features,); the class
    names when the dataset has them and ``details`` the run folder records (e.g. image size, validation layout)."""

    train: Dataset
    val: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    classes: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


class DataSettings(Protocol):
    """What a dataset reads from the experiment's ``data:`` section (``biocircuits.config.experiment.DataSpec``)."""

    name: str
    root: str | None
    download: bool
    val_fraction: float
    split_seed: int
    image_size: int | None
    val_labels: str | None
    shuffle_buffer: int
    decode: str
    channels: int | None
    resize: int | None
    shape: list[int]
    num_classes: int
    train_size: int
    val_size: int
    kwargs: dict[str, Any]


class DatasetSource:
    """Builds a [`DataBundle`][biocircuits.data.registry.DataBundle] from the ``data:`` section."""

    name: ClassVar[str]

    def build(self, spec: DataSettings) -> DataBundle:
        raise NotImplementedError

    def peek(self, spec: DataSettings) -> tuple[tuple[int, ...], int] | None:
        """(one input's shape, number of classes) when ``spec`` alone says, without reading data; None when only
        [`build`][biocircuits.data.registry.DatasetSource.build] can tell (``biocircuits validate`` and ``layers`` then
        build the data)."""
        return None


DATASETS: Registry[type[DatasetSource]] = Registry("dataset")
register_dataset = DATASETS.register


def dataset_source(name: str, search: tuple[Path, ...] = ()) -> DatasetSource:
    """The source of ``data.name``: a registered dataset, or a user's builder ``"module:function"`` (imported;
    ``search`` folders tried for its package)."""
    if is_import_path(name):
        from .plugin import plugin_source

        return plugin_source(name, search)
    return DATASETS.get(name)()


def data_signature(spec: DataSettings) -> tuple[tuple[int, ...], int]:
    """(one input's shape, number of classes) of the data ``spec`` describes, as
    [`build_data`][biocircuits.data.registry.build_data] gives them (after ``channels`` / ``resize``): from the source's
    [`peek`][biocircuits.data.registry.DatasetSource.peek], else by building the data."""
    source = dataset_source(spec.name)
    peeked = source.peek(spec)
    if peeked is None:
        bundle = build_data(spec)
        return tuple(bundle.input_shape), bundle.num_classes
    shape, classes = peeked
    if len(shape) == 3 and spec.channels is not None and shape[0] == 1:
        shape = (spec.channels, *shape[1:])
    if len(shape) == 3 and spec.resize is not None:
        shape = (shape[0], spec.resize, spec.resize)
    return tuple(shape), classes


def build_data(spec: DataSettings) -> DataBundle:
    """The [`DataBundle`][biocircuits.data.registry.DataBundle] for ``spec``, adapted to ``spec.channels`` /
    ``spec.resize`` when they are set."""
    bundle = dataset_source(spec.name).build(spec)
    return adapt(bundle, spec.channels, spec.resize)
