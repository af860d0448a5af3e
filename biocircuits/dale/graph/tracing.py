"""Tracing: the ``torch.fx`` graph of a model with its weight layers as leaves, or a ConfigError naming the module
whose forward cannot be traced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.fx as fx
from torch import nn

from biocircuits.core.layers import WEIGHT_LAYER_TYPES
from biocircuits.errors import ConfigError


class _Tracer(fx.Tracer):
    """Weight layers are leaves; remembers the module being traced so a failure can name it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # attention modules are leaves too: their unit rule (.attention) names them
        return isinstance(m, (*WEIGHT_LAYER_TYPES, nn.MultiheadAttention)) or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        self.stack.append(self.path_of_module(m))
        try:
            out = super().call_module(m, forward, args, kwargs)
        except Exception:
            self.failed_in = self.failed_in or self.stack[-1]  # the innermost module whose forward failed
            raise
        self.stack.pop()
        return out


def trace(model: nn.Module) -> fx.GraphModule:
    """``torch.fx`` graph of ``model`` with its weight layers as leaves; a ConfigError naming the module whose
    forward cannot be traced otherwise."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as err:  # fx raises TraceError, TypeError, NotImplementedError... for untraceable code
        where = tracer.failed_in or type(model).__name__
        raise ConfigError(
            f"cannot follow the graph to give each neuron one Dale type: tracing stops in "
            f"{where or 'the model forward'} ({type(err).__name__}: {str(err).splitlines()[0][:160]})",
            key="dale.types",
            given="graph",
            suggestion="make that forward traceable by torch.fx (no data-dependent control flow), "
            "or set dale.types: per_layer (types per consuming layer, a unit may then "
            "be E for one layer and I for another)",
        ) from None
    return fx.GraphModule(model, graph)
