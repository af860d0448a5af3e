"""Torchvision's standard datasets from a local ``root``; downloaded only when ``download: true``. Each names its
``torchvision.datasets`` class, imported when the set is built (registering the sets does not import torchvision)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from biocircuits.errors import ConfigError

from .registry import DataBundle, DatasetSource, register_dataset


class TorchvisionSet(DatasetSource):
    """A torchvision dataset with ``train=True/False`` splits, normalised by the set's channel statistics."""

    cls_name: ClassVar[str]  # the class in torchvision.datasets
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]
    shape: ClassVar[tuple[int, ...]]
    classes: ClassVar[int]
    augment: ClassVar[bool] = False

    def build(self, spec) -> DataBundle:
        import torchvision
        from torchvision import transforms as T

        cls = getattr(torchvision.datasets, self.cls_name)
        root = Path(spec.root or "data").expanduser()
        normalise = [T.ToTensor(), T.Normalize(self.mean, self.std)]
        train_tf = T.Compose(
            ([T.RandomCrop(self.shape[-1], padding=4), T.RandomHorizontalFlip()] if self.augment else []) + normalise
        )
        try:
            train = cls(str(root), train=True, download=spec.download, transform=train_tf)
            val = cls(str(root), train=False, download=spec.download, transform=T.Compose(normalise))
        except RuntimeError as err:
            raise ConfigError(
                f"dataset {self.name!r} not found under {root.resolve()} ({err})",
                key="data.root",
                given=str(root),
                suggestion="set data.download: true to fetch it, or point data.root at a folder holding "
                f"torchvision's {self.cls_name} files",
            ) from None
        return DataBundle(train, val, self.classes, self.shape)

    def peek(self, spec) -> tuple[tuple[int, ...], int]:
        return self.shape, self.classes


@register_dataset
class Mnist(TorchvisionSet):
    name = "mnist"
    cls_name = "MNIST"
    mean, std, shape, classes = (0.1307,), (0.3081,), (1, 28, 28), 10


@register_dataset
class FashionMnist(TorchvisionSet):
    name = "fashion_mnist"
    cls_name = "FashionMNIST"
    mean, std, shape, classes = (0.2860,), (0.3530,), (1, 28, 28), 10


@register_dataset
class Cifar10(TorchvisionSet):
    name = "cifar10"
    cls_name = "CIFAR10"
    mean, std, shape, classes, augment = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), (3, 32, 32), 10, True


@register_dataset
class Cifar100(TorchvisionSet):
    name = "cifar100"
    cls_name = "CIFAR100"
    mean, std, shape, classes, augment = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (3, 32, 32), 100, True
