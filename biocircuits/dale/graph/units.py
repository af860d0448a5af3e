"""The result of following a model's graph: its producers of units, what each weight layer reads and produces, and
the union-find representative of every unit id (see [`biocircuits.dale.graph`][biocircuits.dale.graph])."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from biocircuits.core.celltypes import assign_signs


@dataclass
class Producer:
    """A producer of units: a weight layer's output channels, the model input, or an opaque op's output; its unit
    ids are ``offset, ..., offset + width - 1``."""

    name: str
    offset: int
    width: int
    kind: str = "layer"  # layer | input | op


@dataclass
class UnitGraph:
    """The units of a model and who reads them.

    ``inputs[layer]``: unit id of each input channel of the weight layer (shape (in,)); ``outputs[layer]``: unit id
    of each of its output channels (shape (out,)); ``root``: union-find representative of every unit id;
    ``folds[layer]``: the normalisation module applied right after the layer (its per-channel gain can flip the
    sign of every synapse onto a unit, see [`biocircuits.dale.effective`][biocircuits.dale.effective]); ``norms[norm]``:
    unit id of each channel a normalisation module scales (shape (C,)), wherever it sits (after a concatenation, an
    addition, ...)."""

    producers: list[Producer]
    inputs: dict[str, Tensor] = field(default_factory=dict)
    outputs: dict[str, Tensor] = field(default_factory=dict)
    root: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    folds: dict[str, str] = field(default_factory=dict)
    norms: dict[str, Tensor] = field(default_factory=dict)

    def unit_name(self, uid: int) -> str:
        """``producer[channel]`` of a unit id."""
        for p in self.producers:
            if p.offset <= uid < p.offset + p.width:
                return f"{p.name}[{uid - p.offset}]"
        return f"unit {uid}"

    def signs(self, excitatory_fraction: float, assignment: str, seed: int) -> Tensor:
        """+1 / -1 per unit id: each producer's ``assign_signs`` in graph order; merged units take the sign
        their class got first."""
        n = sum(p.width for p in self.producers)
        by_root = torch.zeros(n)
        for p in self.producers:
            roots = self.root[p.offset : p.offset + p.width]
            fresh = by_root[roots] == 0
            signs = assign_signs(p.width, excitatory_fraction, assignment, seed)
            by_root[roots[fresh]] = signs[fresh]
        return by_root[self.root]
