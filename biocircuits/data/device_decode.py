"""``data.decode: gpu``: the loader's workers only read JPEG files (bytes, no decoding); each training batch is
decoded on the device the batch moves to (``torchvision.io.decode_jpeg(..., device=cuda)``, nvJPEG) and augmented
there (RandomResizedCrop + horizontal flip + ImageNet normalisation, as
[`imagefolder.reference_transforms`][biocircuits.data.imagefolder.reference_transforms]). The validation set keeps the
CPU path. Each data option is one entry of `DECODERS`. torchvision is imported where it decodes or reads, not with the
module."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from biocircuits.errors import ConfigError, DataError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class EncodedBatch:
    """A batch of undecoded JPEG files: ``data`` (one uint8 byte tensor per image), ``paths``. ``.to(device)``
    decodes all of them on ``device`` in one call and returns the augmented float batch (B, 3, crop, crop):
    per image, RandomResizedCrop(crop) and a flip with probability 1/2 (torch's global generator on the main
    process), then (x / 255 - mean) / std."""

    def __init__(self, data: list[torch.Tensor], paths: list[str], crop: int) -> None:
        self.data, self.paths, self.crop = data, paths, crop

    def __len__(self) -> int:
        return len(self.data)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_jpeg
        from torchvision.transforms import v2

        try:
            images = decode_jpeg(self.data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as err:
            raise DataError(
                f"a JPEG of this batch cannot be decoded ({str(err)[:120]})",
                file=self.paths[0],
                suggestion="data.decode: gpu reads JPEG only; check or re-encode: " + ", ".join(self.paths[:4]),
            ) from None
        augment = v2.Compose([v2.RandomResizedCrop(self.crop, antialias=True), v2.RandomHorizontalFlip()])
        batch = torch.stack([augment(image) for image in images]).float().div_(255)
        mean = torch.tensor(MEAN, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=batch.device).view(1, 3, 1, 1)
        return (batch - mean) / std


class ReadBytes:
    """A dataset loader: (the file's bytes as a uint8 tensor, its path): the workers' whole job under
    ``data.decode: gpu``."""

    def __call__(self, path: str) -> tuple[torch.Tensor, str]:
        from torchvision.io import read_file

        return read_file(path), path


class EncodedCollate:
    """Collates ((bytes, path), target) samples ([`ReadBytes`][biocircuits.data.device_decode.ReadBytes]) into
    ([`EncodedBatch`][biocircuits.data.device_decode.EncodedBatch], targets)."""

    def __init__(self, crop: int) -> None:
        self.crop = crop

    def __call__(self, items: Sequence[tuple[tuple[torch.Tensor, str], int]]) -> tuple[EncodedBatch, torch.Tensor]:
        data = [d for (d, _), _ in items]
        paths = [p for (_, p), _ in items]
        return EncodedBatch(data, paths, self.crop), torch.tensor([t for _, t in items])


ON_DEVICE = ("imagefolder", "webdataset")  # the datasets whose training JPEGs can be decoded on the device


def check_decode(decode: str, device_kind: str, dataset: str) -> None:
    """Refuse ``data.decode: gpu`` without a CUDA device (the CPU path is the one to use there) or for a dataset
    that is not JPEG files ([`ON_DEVICE`][biocircuits.data.device_decode.ON_DEVICE])."""
    if decode == "gpu" and dataset not in ON_DEVICE:
        raise ConfigError(
            f"data.decode: gpu decodes JPEG files; dataset {dataset!r} holds none",
            key="data.decode",
            given=decode,
            expected=f"cpu (gpu: data.name {' or '.join(ON_DEVICE)})",
        )
    if decode == "gpu" and device_kind != "cuda":
        raise ConfigError(
            "data.decode: gpu decodes on a CUDA device; this run has none",
            key="data.decode",
            given=decode,
            expected="cpu here (or train.device: cuda on a GPU machine)",
            suggestion="data.decode: cpu with more data.num_workers",
        )


__all__ = ["ON_DEVICE", "EncodedBatch", "EncodedCollate", "ReadBytes", "check_decode"]
