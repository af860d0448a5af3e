"""Identity shortcuts under Dale: torchvision ResNet blocks add their input with weight +1, which leaks the
sign of inhibitory units. ``residual: signed`` multiplies each shortcut by its source units' signs."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from biocircuits.core.celltypes import cell_types
from biocircuits.core.interface import attach

from .slot import DALE, DaleAttachment


def identity_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Torchvision ResNet blocks whose shortcut is the identity (no downsample)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BasicBlock | Bottleneck) and m.downsample is None]


def leaking_units(block: nn.Module) -> int:
    """Inhibitory source units that an identity shortcut carries with weight +1 (0 once signed)."""
    if isinstance(block, SignedShortcut) or cell_types(block.conv1) is None:
        return 0
    return int((block.conv1.dale_sign < 0).sum())


class SignedShortcut:
    """Mixin: the block's shortcut is x * s (s = the source units' Dale signs, buffer ``residual_sign``)."""

    def _shortcut(self, x: Tensor) -> Tensor:
        if self.downsample is not None:
            return self.downsample(x)
        return x * self.residual_sign.view(1, -1, 1, 1).to(x.dtype)


class SignedBasicBlock(SignedShortcut, BasicBlock):
    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self._shortcut(x))


class SignedBottleneck(SignedShortcut, Bottleneck):
    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self._shortcut(x))


@DALE.register
class SignedResidual(DaleAttachment):
    """``dale.residual: signed``, attached to every ResNet block with an identity shortcut whose ``conv1`` is
    Dale-constrained: the buffer ``residual_sign`` (the Dale signs of the units the shortcut carries, those of
    ``conv1``'s inputs) and the block's class swapped to its signed version (undone by ``detach``)."""

    name = "signed_residual"
    spec_key = "residual"
    choice = "signed"

    @classmethod
    def targets(cls, model: nn.Module, constrained: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
        return [
            (name, block)
            for name, block in identity_blocks(model)
            if cell_types(block.conv1) is not None and not isinstance(block, SignedShortcut)
        ]

    def attach(self, block: nn.Module, qualname: str) -> None:
        super().attach(block, qualname)
        sign = cell_types(block.conv1) if self.sign is None else self.sign
        self.register_buffer(block, "residual_sign", sign.detach().clone().to(torch.float32))
        block.__class__ = SignedBasicBlock if isinstance(block, BasicBlock) else SignedBottleneck


def sign_shortcuts(model: nn.Module) -> list[str]:
    """Attach [`SignedResidual`][biocircuits.dale.residual.SignedResidual] to every identity-shortcut block whose conv1
    has a ``dale_sign``; returns the names of the blocks changed."""
    changed = []
    for name, block in SignedResidual.targets(model, []):
        attach(block, SignedResidual(), name)
        changed.append(name)
    return changed
