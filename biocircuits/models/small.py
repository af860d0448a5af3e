"""Small models for offline datasets: an MLP, LeNet-5 and a configurable conv net with batch norm."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from .registry import register_model


@register_model("mlp")
def mlp(
    input_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (256, 256), activation: str = "relu"
) -> nn.Module:
    """Flatten, then Linear-activation blocks of widths ``hidden``, then a Linear classifier."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[activation]
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_model("lenet")
def lenet(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling; adaptive pooling makes it take any image size."""
    c = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(5),
        nn.Flatten(),
        nn.Linear(16 * 25, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


@register_model("convnet")
def convnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: Sequence[int] = (32, 64),
    batch_norm: bool = True,
    hidden: int = 128,
    pool: int = 4,
) -> nn.Module:
    """Conv3x3-BN-ReLU-MaxPool blocks of widths ``channels``, adaptive average pooling to ``pool`` x ``pool``,
    Linear-ReLU (``hidden`` units), Linear."""
    layers: list[nn.Module] = []
    c = input_shape[0]
    for width in channels:
        layers += [nn.Conv2d(c, width, 3, padding=1, bias=not batch_norm)]
        layers += [nn.BatchNorm2d(width)] if batch_norm else []
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        c = width
    layers += [
        nn.AdaptiveAvgPool2d(pool),
        nn.Flatten(),
        nn.Linear(c * pool * pool, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    ]
    return nn.Sequential(*layers)
