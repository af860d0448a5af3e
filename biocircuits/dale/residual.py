"""Identity shortcuts under Dale: torchvision ResNet blocks add their input with weight +1, which leaks the
sign of inhibitory units. ``residual: signed`` multiplies each shortcut by its source units' signs.

torchvision is not imported here: a model can hold a torchvision block only once ``torchvision.models.resnet`` has
been imported, so the block classes are looked up in ``sys.modules`` (no blocks when it is absent), and the signed
blocks are built on first use ([`signed_blocks`][biocircuits.dale.residual.signed_blocks]; importing
``SignedBasicBlock`` or ``SignedBottleneck`` from this module builds them too)."""

from __future__ import annotations

import functools
import sys
from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import cell_types
from biocircuits.core.interface import attach

from .slot import DALE, DaleAttachment


def resnet_blocks() -> tuple[type, ...]:
    """torchvision's ``(BasicBlock, Bottleneck)`` if ``torchvision.models.resnet`` is imported, else ``()``."""
    resnet = sys.modules.get("torchvision.models.resnet")
    return () if resnet is None else (resnet.BasicBlock, resnet.Bottleneck)


def identity_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Torchvision ResNet blocks whose shortcut is the identity (no downsample)."""
    blocks = resnet_blocks()
    if not blocks:
        return []
    return [(n, m) for n, m in model.named_modules() if isinstance(m, blocks) and m.downsample is None]


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


def _basic_forward(self, x: Tensor) -> Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu(out + self._shortcut(x))


def _bottleneck_forward(self, x: Tensor) -> Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(out + self._shortcut(x))


@functools.cache
def signed_blocks() -> dict[type, type]:
    """torchvision's ``BasicBlock`` and ``Bottleneck`` -> their signed versions ``SignedBasicBlock`` and
    ``SignedBottleneck`` (subclasses with [`SignedShortcut`][biocircuits.dale.residual.SignedShortcut]), built once;
    imports torchvision."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    signed = {}
    for base, forward in ((BasicBlock, _basic_forward), (Bottleneck, _bottleneck_forward)):
        name = "Signed" + base.__name__
        body = {"forward": forward, "__module__": __name__, "__qualname__": name, "__doc__": SignedShortcut.__doc__}
        signed[base] = type(name, (SignedShortcut, base), body)
    return signed


def __getattr__(name: str) -> Any:
    """``SignedBasicBlock`` and ``SignedBottleneck`` on first access (pickle finds them here too)."""
    found = {cls.__name__: cls for cls in signed_blocks().values()} if name.startswith("Signed") else {}
    if name not in found:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return found[name]


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
        base = next(cls for cls in signed_blocks() if isinstance(block, cls))
        block.__class__ = signed_blocks()[base]


def sign_shortcuts(model: nn.Module) -> list[str]:
    """Attach [`SignedResidual`][biocircuits.dale.residual.SignedResidual] to every identity-shortcut block whose conv1
    has a ``dale_sign``; returns the names of the blocks changed."""
    changed = []
    for name, block in SignedResidual.targets(model, []):
        attach(block, SignedResidual(), name)
        changed.append(name)
    return changed
