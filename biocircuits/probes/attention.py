"""Probes on attention: a converted ``nn.MultiheadAttention``'s packed in-projection is probed as one layer (its
output, the error at it, is every (L, N, 3E) output of its in-projection in the forward: one for self-attention, one
per distinct input for cross-attention) and as its three projections ``<name>[q]``, ``<name>[k]``, ``<name>[v]``:
rows 0..E-1, E..2E-1, 2E..3E-1 of W_in, B_in and grad W_in, and the same slices of the last dim of the error at the
in-projection's output. Its ``out_proj`` is a converted linear layer, probed as any other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

PROJECTIONS = ("q", "k", "v")


class InProjectionCapture:
    """Collects the in-projection outputs of ``layer`` (a ``FeedbackMultiheadAttention``) into ``outputs[name]`` while
    attached (the layer appends to its ``probe_outputs`` list); ``remove`` stops it, like a hook's handle."""

    def __init__(self, layer: nn.Module, name: str, outputs: dict[str, list[Tensor]]) -> None:
        self.layer = layer
        outputs[name] = layer.__dict__["probe_outputs"] = []

    def remove(self) -> None:
        self.layer.__dict__.pop("probe_outputs", None)


def capture_outputs(layer: nn.Module, name: str, outputs: dict[str, list[Tensor]], hook: Callable) -> Any:
    """A handle that records the layer's outputs in ``outputs[name]``: an
    ``InProjectionCapture`` for a packed attention, else the forward
    hook ``hook`` registered on the layer."""
    if getattr(layer, "calls_out_proj", False):
        return InProjectionCapture(layer, name, outputs)
    return layer.register_forward_hook(hook)


def projection_rows(
    name: str,
    layer: nn.Module,
    feedback: Tensor | None,
    errors: tuple[list[Tensor | None], list[Tensor | None]],
    updates: tuple[Tensor | None, Tensor | None],
    row: Callable[..., Any],
) -> dict[str, Any]:
    """``<name>[q]``, ``[k]``, ``[v]`` of a packed attention: ``row(layer, feedback, rule_grads, exact_grads,
    weight=...)`` (the probe's per-layer row) on each block of E rows of W_in, B_in and grad W_in, with the error
    (rule, exact: a list of gradients of the in-projection's outputs, (..., 3E) each) cut to the same block of its
    last dim and flattened together."""
    E = layer.embed_dim
    out = {}
    for i, p in enumerate(PROJECTIONS):
        rows = slice(i * E, (i + 1) * E)
        err = tuple(_cut(grads, rows) for grads in errors)
        upd = tuple(None if g is None else g[rows] for g in updates)
        fb = None if feedback is None else feedback[rows]
        out[f"{name}[{p}]"] = row(layer, fb, (err[0], upd[0]), (err[1], upd[1]), weight=layer.weight.detach()[rows])
    return out


def _cut(grads: list[Tensor | None], rows: slice) -> Tensor | None:
    if any(g is None for g in grads):
        return None
    return joined([g[..., rows] for g in grads])


def joined(grads: list[Tensor | None]) -> Tensor | None:
    """The gradients of a layer's outputs as one flat vector (None when one is missing)."""
    if not grads or any(g is None for g in grads):
        return None
    return grads[0].flatten() if len(grads) == 1 else torch.cat([g.flatten() for g in grads])
