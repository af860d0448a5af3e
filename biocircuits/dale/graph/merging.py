"""Merging units: ``a + b``, ``a - b``, ``a * b`` of two tracked tensors make the units they pair element by element
one neuron (a residual sum), and a weight layer called twice reads and produces one set of units; union-find over
unit ids, the smallest id of a class its representative (the earliest producer's unit)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
from torch import Tensor

if TYPE_CHECKING:
    from .propagate import Propagate


class UnionFind:
    """Disjoint sets of unit ids (ints); ``find`` gives the smallest id of ``a``'s class."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        while self.parent.get(a, a) != a:
            self.parent[a] = self.parent.get(self.parent[a], self.parent[a])
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the earlier unit stays the representative

    def roots(self, n: int) -> Tensor:
        """The representative of each unit id ``0 .. n-1``, shape (n,)."""
        return torch.tensor([self.find(i) for i in range(n)], dtype=torch.long)


def merge_elementwise(uf: UnionFind, a: Tensor, b: Tensor) -> None:
    """Union ``a[i]`` with ``b[i]`` for every element (same shape), each distinct pair once."""
    pairs = torch.unique(torch.stack([a.reshape(-1), b.reshape(-1)]), dim=1)
    for x, y in pairs.T.tolist():
        uf.union(x, y)


def merging(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """The rule of ``a + b``, ``a - b``, ``a * b``: the tracked operands of the output's shape are one neuron per
    element, their units merge and the output keeps the first one's ids; an operand broadcast to the output (a
    scalar, a per-channel gate) is not merged; with no operand of that shape, fresh units."""
    if not isinstance(real, Tensor):
        return prop.opaque(n, real)
    tensors = [t for t in prop.tracked_ids(n) if tuple(t.shape) == tuple(real.shape)]
    if not tensors:
        return prop.opaque(n, real)
    for other in tensors[1:]:
        merge_elementwise(prop.uf, tensors[0], other)
    return tensors[0]


def merge_repeated_calls(uf: UnionFind, calls: list[Tensor]) -> None:
    """A weight layer called several times (shared weights) reads, or produces, one set of units: every call's
    unit vector of the first call's shape is merged with the first call's, position by position."""
    for other in calls[1:]:
        if other.shape == calls[0].shape:
            for a, b in zip(calls[0].tolist(), other.tolist(), strict=True):
                uf.union(a, b)
