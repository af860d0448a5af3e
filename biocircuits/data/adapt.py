"""Adapting an in-memory image dataset to a model: grayscale to several channels, and resizing, so that e.g.
torchvision's ResNet-18 (3-channel input) trains on the offline digits."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from biocircuits.errors import ConfigError

if TYPE_CHECKING:
    from .registry import DataBundle


def _adapt_images(x: torch.Tensor, channels: int | None, resize: int | None) -> torch.Tensor:
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ConfigError(
                "data.channels repeats a grayscale image; this dataset has colour channels",
                key="data.channels",
                expected=f"{x.shape[1]} (or leave it unset)",
                given=channels,
            )
        x = x.expand(-1, channels, *x.shape[2:]).contiguous()
    if resize is not None and tuple(x.shape[2:]) != (resize, resize):
        x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False, antialias=True)
    return x


def adapt(bundle: DataBundle, channels: int | None, resize: int | None) -> DataBundle:
    """``bundle`` with every image x (N, C, H, W) repeated to ``channels`` channels (C = 1 only) and resized to
    ``resize`` x ``resize`` (bilinear, antialiased); unchanged when both are None. In-memory datasets only."""
    if channels is None and resize is None:
        return bundle
    out = []
    for split in (bundle.train, bundle.val):
        if not isinstance(split, TensorDataset) or split.tensors[0].dim() != 4:
            raise ConfigError(
                "data.channels and data.resize apply to in-memory image datasets",
                key="data",
                given=type(split).__name__,
                has_given=True,
                suggestion="for imagefolder use data.image_size; the images are RGB already",
            )
        x, *rest = split.tensors
        out.append(TensorDataset(_adapt_images(x, channels, resize), *rest))
    c, h, w = out[0].tensors[0].shape[1:]
    return dataclasses.replace(bundle, train=out[0], val=out[1], input_shape=(c, h, w))
