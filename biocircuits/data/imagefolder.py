"""ImageNet layout (``root/train/<class>/*.JPEG``; ``root/val/<class>/*.JPEG`` or the flat ILSVRC ``root/val/``
of [`ilsvrc`][biocircuits.data.ilsvrc]) with the torchvision reference classification transforms
(``references/classification/presets.py``). torchvision is imported by the functions that use it, not with the
module."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from biocircuits.errors import ConfigError, DataError

from .device_decode import EncodedCollate, ReadBytes
from .ilsvrc import LAYOUTS, flat_val, images_in
from .registry import DataBundle, DatasetSource, register_dataset

if TYPE_CHECKING:
    from torchvision import datasets
    from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def reference_transforms(crop: int) -> tuple[T.Compose, T.Compose]:
    """Train: RandomResizedCrop(crop), horizontal flip; val: Resize(crop * 256 / 224), CenterCrop(crop);
    both to tensors normalised by the ImageNet statistics."""
    from torchvision import transforms as T

    resize = int(round(crop * 256 / 224))
    norm = [T.PILToTensor(), T.ConvertImageDtype(torch.float), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train = T.Compose([T.RandomResizedCrop(crop, antialias=True), T.RandomHorizontalFlip(), *norm])
    val = T.Compose([T.Resize(resize, antialias=True), T.CenterCrop(crop), *norm])
    return train, val


def checked_loader(path: str):
    """``torchvision``'s image loader; a file PIL cannot decode (truncated, corrupt, not an image) raises
    [`DataError`][biocircuits.errors.DataError] naming it. The run stops there rather than skipping it: a skipped sample
    would change the batches (breaking exact resume and equal global batches under DDP), and a broken file is worth
    fixing."""
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for damaged files
        raise DataError(
            f"unreadable image ({type(err).__name__}: {str(err)[:120]})",
            file=path,
            suggestion="replace or remove the file",
        ) from None


def image_folder(folder: Path, transform, loader=checked_loader) -> datasets.ImageFolder:
    """An ``ImageFolder`` over ``folder`` with [`checked_loader`][biocircuits.data.imagefolder.checked_loader]; an empty
    folder, or class folders without images, is a ConfigError naming the folder."""
    from torchvision import datasets

    try:
        return datasets.ImageFolder(str(folder), transform=transform, loader=loader)
    except (FileNotFoundError, OSError) as err:
        raise no_images(folder, err, "images") from None


def no_images(folder: Path | str, err: OSError, what: str) -> ConfigError:
    """The ConfigError for a folder that holds no ``what`` (images, class folders), with torchvision's reason."""
    return ConfigError(
        f"no {what} under {folder} ({str(err).splitlines()[0][:160]})",
        key="data.root",
        expected="class folders holding images (.jpg, .JPEG, .png, ...)",
        given=str(folder),
        suggestion="ImageNet layout: ROOT/train/<class>/*.JPEG",
    )


@register_dataset
class ImageFolderSet(DatasetSource):
    """ImageNet-style folders; ``image_size`` (default 224) is the crop size; ``decode: gpu`` decodes the training
    JPEGs on the device ([`device_decode`][biocircuits.data.device_decode])."""

    name = "imagefolder"

    def build(self, spec) -> DataBundle:
        root = self.root(spec)
        crop = spec.image_size or 224
        train_tf, val_tf = reference_transforms(crop)
        on_device = spec.decode == "gpu"  # workers read bytes; the batch is decoded and augmented on the device
        train = image_folder(
            root / "train", None if on_device else train_tf, ReadBytes() if on_device else checked_loader
        )
        if on_device:
            train.collate = EncodedCollate(crop)
        val, layout = validation_set(root / "val", train.classes, spec.val_labels, val_tf)
        return DataBundle(
            train,
            val,
            len(train.classes),
            (3, crop, crop),
            classes=tuple(train.classes),
            details={"image_size": crop, "val_layout": layout, "root": str(root.resolve())},
        )

    def peek(self, spec) -> tuple[tuple[int, ...], int]:
        """((3, crop, crop), number of class folders under ``root/train``) from the folder names alone (no image is
        listed or read, so ``validate`` and ``layers`` stay instant on ImageNet): the classes are torchvision's
        ``find_classes``, the ones [`build`][biocircuits.data.imagefolder.ImageFolderSet.build] uses (a class folder
        without images is found by ``build``)."""
        from torchvision.datasets.folder import find_classes

        train = self.root(spec) / "train"
        try:
            classes, _ = find_classes(str(train))
        except (FileNotFoundError, OSError) as err:
            raise no_images(train, err, "class folders") from None
        crop = spec.image_size or 224
        return (3, crop, crop), len(classes)

    @staticmethod
    def root(spec) -> Path:
        """``data.root``, checked to hold ``train/`` and ``val/`` folders (a ConfigError naming what is missing)."""
        if spec.root is None:
            raise ConfigError(
                "imagefolder needs data.root",
                key="data.root",
                expected="a folder with train/ and val/",
                given=None,
                has_given=True,
            )
        root = Path(spec.root).expanduser()
        missing = [s for s in ("train", "val") if not (root / s).is_dir()]
        if missing:
            raise ConfigError(
                f"no {' or '.join(missing)} folder under {root.resolve()}",
                key="data.root",
                given=str(root),
                suggestion="ROOT/train/<class>/*.JPEG and, for val/, " + LAYOUTS,
            )
        return root


def validation_set(folder: Path, classes: list[str], labels: str | None, transform) -> tuple[Dataset, str]:
    """``folder`` as class folders (the same as train/'s) or, when it holds images and no folders, as the flat
    ILSVRC layout ([`ilsvrc.flat_val`][biocircuits.data.ilsvrc.flat_val]); returns the set and its layout's name.
    Anything else is a ConfigError listing the layouts that work."""
    has_dirs = any(p.is_dir() for p in folder.iterdir())
    if not has_dirs and images_in(folder):
        return flat_val(folder, classes, labels, transform, checked_loader)
    if not has_dirs:
        raise ConfigError(
            f"no images or class folders in {folder}", key="data.root", given=str(folder.parent), suggestion=LAYOUTS
        )
    val = image_folder(folder, transform)
    if val.classes != classes:
        extra = sorted(set(val.classes) - set(classes))[:5]
        raise ConfigError(
            "train/ and val/ hold different class folders",
            key="data.root",
            given=str(folder.parent),
            expected=f"val/ class folders = train/'s {len(classes)}",
            suggestion=f"val/ has {len(val.classes)}"
            + (f", e.g. {extra} not in train/" if extra else "")
            + "; "
            + LAYOUTS,
        )
    return val, "class folders"
