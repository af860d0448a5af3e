"""The dataset registry: a new dataset is one class with ``@register_dataset``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from torch.utils.data import Dataset

from biocircuits.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from biocircuits.config.experiment import DataSpec


@dataclass
class DataBundle:
    """Train and validation sets, the number of classes and one input's shape (C, H, W) or (features,)."""

    train: Dataset
    val: Dataset
    num_classes: int
    input_shape: tuple[int, ...]


class DatasetSource:
    """Builds a :class:`DataBundle` from the ``data:`` section."""

    name: ClassVar[str]

    def build(self, spec: DataSpec) -> DataBundle:
        raise NotImplementedError


DATASETS: dict[str, type[DatasetSource]] = {}


def register_dataset(cls: type[DatasetSource]) -> type[DatasetSource]:
    DATASETS[cls.name] = cls
    return cls


def dataset_class(name: str) -> type[DatasetSource]:
    _load_all()
    if name not in DATASETS:
        raise ConfigError("unknown dataset", expected="one of " + ", ".join(sorted(DATASETS)), given=name,
                          suggestion=did_you_mean(name, DATASETS))
    return DATASETS[name]


def build_data(spec: DataSpec) -> DataBundle:
    """The :class:`DataBundle` for ``spec``."""
    return dataset_class(spec.name)().build(spec)


def _load_all() -> None:
    from . import imagefolder, offline, synthetic, torchvision_sets  # noqa: F401
