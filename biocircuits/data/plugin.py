"""``data.name: "my_pkg.data:build"``: a user's own dataset, by import path. ``build(**data.kwargs)`` returns the
training and validation datasets, each a map-style dataset of ``(x, y)`` pairs (x a tensor, y an integer class)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from biocircuits.core.imports import load_object
from biocircuits.errors import ConfigError

from .registry import DataBundle, DatasetSource

MAX_LABEL_SCAN = 100_000  # samples read to count the classes when neither the dataset nor data.num_classes says


def _is_dataset(obj: object) -> bool:
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__")


def _checked_splits(result: Any, path: str) -> tuple[Dataset, Dataset]:
    """``result`` as (train, val), each a non-empty map-style dataset; a [`ConfigError`][biocircuits.errors.ConfigError]
    otherwise."""
    if not (isinstance(result, tuple | list) and len(result) == 2 and all(map(_is_dataset, result))):
        given = (
            f"{type(result).__name__} of {len(result)}" if isinstance(result, tuple | list) else type(result).__name__
        )
        raise ConfigError(
            f"dataset builder {path!r} returned the wrong thing",
            key="data.name",
            expected="(train, val): two datasets with __getitem__ and __len__",
            given=given,
            has_given=True,
            suggestion="return train_set, val_set",
        )
    for split, ds in zip(("train", "val"), result, strict=True):
        if len(ds) == 0:
            raise ConfigError(
                f"dataset builder {path!r} returned an empty {split} set",
                key="data.kwargs",
                expected="at least one (x, y) pair",
                given=0,
            )
    return result[0], result[1]


def _first_pair(train: Dataset, path: str) -> tuple[torch.Tensor, Any]:
    sample = train[0]
    if not (isinstance(sample, tuple | list) and len(sample) == 2 and isinstance(sample[0], torch.Tensor)):
        raise ConfigError(
            f"dataset {path!r}: a sample is not an (x, y) pair",
            key="data.name",
            expected="train[0] == (tensor x, integer class y)",
            given=type(sample).__name__,
            has_given=True,
            suggestion="return (x, y) from __getitem__ (a TensorDataset(x, y) does)",
        )
    return sample[0], sample[1]


def count_classes(train: Dataset, spec: Any, path: str) -> int:
    """The number of classes: the dataset's ``num_classes`` or ``len(classes)`` (torchvision's convention), else
    ``data.num_classes`` when the file sets it, else 1 + the largest label of the training set (at most
    [`MAX_LABEL_SCAN`][biocircuits.data.plugin.MAX_LABEL_SCAN] samples read)."""
    if isinstance(getattr(train, "num_classes", None), int):
        return train.num_classes
    if isinstance(getattr(train, "classes", None), list | tuple):
        return len(train.classes)
    if "num_classes" in getattr(spec, "model_fields_set", ()):
        return spec.num_classes
    if len(train) > MAX_LABEL_SCAN:
        raise ConfigError(
            f"dataset {path!r}: the number of classes is unknown",
            key="data.num_classes",
            expected="data.num_classes, or a num_classes attribute on the training set",
            given=f"{len(train)} samples (too many to scan)",
            has_given=True,
            suggestion="set data.num_classes",
        )
    labels = (
        train.tensors[-1] if hasattr(train, "tensors") else torch.as_tensor([train[i][1] for i in range(len(train))])
    )
    return int(labels.max()) + 1


class PluginSource(DatasetSource):
    """A [`DatasetSource`][biocircuits.data.registry.DatasetSource] around the user's builder ``fn`` named by
    ``path``."""

    name = "(import path)"

    def __init__(self, path: str, fn: Callable[..., Any]) -> None:
        self.path, self.fn = path, fn

    def build(self, spec: Any) -> DataBundle:
        kwargs = dict(getattr(spec, "kwargs", None) or {})
        try:
            result = self.fn(**kwargs)
        except ConfigError:
            raise
        except Exception as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise ConfigError(
                f"dataset builder {self.path!r} failed: {type(err).__name__}: {first}",
                key="data.kwargs",
                given=kwargs,
                has_given=True,
                suggestion="check data.kwargs against the builder's parameters (--debug shows the traceback)",
            ) from err
        train, val = _checked_splits(result, self.path)
        x, _ = _first_pair(train, self.path)
        return DataBundle(train, val, count_classes(train, spec, self.path), tuple(x.shape))


def plugin_source(path: str, search: tuple[Path, ...] = ()) -> PluginSource:
    """The source for ``data.name: "module:function"`` (``search``: folders tried for the module's package)."""
    return PluginSource(path, load_object(path, "data.name", search))
