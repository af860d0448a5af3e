"""Runs the traced graph on a sample and carries unit ids beside every tensor: the input and each weight layer
produce fresh units, every other op hands its node to its rule in
[`UNIT_RULES`][biocircuits.dale.graph.ops.UNIT_RULES]."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn

from biocircuits.core.layers import WEIGHT_LAYER_TYPES

from .layers import per_channel, per_feature, weight_layer_units
from .merging import UnionFind
from .ops import rule_for
from .units import Producer

NORM_MODULES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _carries_tensors(real: Any) -> bool:
    return isinstance(real, Tensor) or (isinstance(real, tuple | list) and any(isinstance(t, Tensor) for t in real))


class Propagate(fx.Interpreter):
    """Unit ids per node (``ids``), the producers in graph order, the union-find of merged units, and what each
    weight layer read and produced (one entry per call); see [`biocircuits.dale.graph`][biocircuits.dale.graph]."""

    def __init__(self, gm: fx.GraphModule, layers: dict[str, nn.Module]) -> None:
        super().__init__(gm)
        self.layers = layers
        self.ids: dict[fx.Node, Any] = {}
        self.producers: list[Producer] = []
        self.uf = UnionFind()
        self.inputs: dict[str, list[Tensor]] = {}
        self.outputs: dict[str, list[Tensor]] = {}
        self.folds: dict[str, str] = {}
        self.norms: dict[str, Tensor] = {}
        self.n = 0
        # the input's units lie along its last dim when the first weight layer is a linear one, else along dim 1
        first = next(iter(layers.values()), None)
        self.features_last = isinstance(first, nn.Linear)

    def call_module(self, target: str, args: tuple, kwargs: dict) -> Any:
        module = self.fetch_attr(target)
        if target in self.layers:  # the plain torch forward: no feedback rule, no hooks, no state advanced
            plain = next(c for c in type(module).__mro__ if c in WEIGHT_LAYER_TYPES)
            return plain.forward(module, *args, **kwargs)
        return super().call_module(target, args, kwargs)

    def run_node(self, n: fx.Node) -> Any:
        real = super().run_node(n)
        self.ids[n] = self.unit_ids(n, real)
        for done in self.user_to_last_uses.get(n, []):  # free the ids no later node reads
            self.ids.pop(done, None)
        return real

    def unit_ids(self, n: fx.Node, real: Any) -> Any:
        """The ids of node ``n``'s output ``real`` (None where it holds no tensor)."""
        if n.op == "placeholder":
            return self.input_units(real)
        if n.op == "output" or not _carries_tensors(real):
            return None
        if n.op == "get_attr" and isinstance(real, Tensor) and real.dim():  # a parameter or buffer: features last
            return self.fresh(n.name, real, real.dim() - 1, "op")  # (embeddings, Swin v2's coordinate table)
        if isinstance(real, Tensor) and n.op == "call_module" and n.target in self.layers:
            return weight_layer_units(self, n, real)
        module = self.fetch_attr(n.target) if n.op == "call_module" else None
        return rule_for(n, module)(self, n, real)

    def input_units(self, real: Any) -> Tensor | None:
        """Fresh units for a model input: along its last dim (features) or dim 1 (channels)."""
        if not isinstance(real, Tensor):
            return None
        dim = real.dim() - 1 if self.features_last or real.dim() < 2 else 1
        return self.fresh("<input>", real, dim, "input")

    def fresh(self, name: str, like: Tensor, dim: int, kind: str) -> Tensor:
        """A new producer of ``like.shape[dim]`` units; ids of ``like``'s shape, constant off ``dim``."""
        width = like.shape[dim] if like.dim() else 1
        self.producers.append(Producer(name, self.n, width, kind))
        ids = torch.arange(self.n, self.n + width)
        self.n += width
        if not like.dim():
            return ids[0]
        shape = [1] * like.dim()
        shape[dim] = width
        return ids.view(shape).expand(like.shape).contiguous()

    def opaque(self, n: fx.Node, real: Any) -> Any:
        """Fresh units for an op that mixes units (along
        [`unit_dim`][biocircuits.dale.graph.propagate.Propagate.unit_dim]), one producer per output tensor."""
        if isinstance(real, Tensor):
            return self.fresh(n.name, real, self.unit_dim(real), "op")
        return tuple(
            self.fresh(f"{n.name}[{i}]", t, self.unit_dim(t), "op") if isinstance(t, Tensor) else None
            for i, t in enumerate(real)
        )

    def unit_dim(self, t: Tensor) -> int:
        """Where an opaque op's fresh units lie: the last dim in a model whose first layer is linear, else dim 1."""
        return 0 if t.dim() < 2 else (t.dim() - 1 if self.features_last else 1)

    def tracked_ids(self, n: fx.Node) -> list[Tensor]:
        """The id tensors of the node's inputs that carry them, in input order."""
        return [self.ids[a] for a in n.all_input_nodes if isinstance(self.ids.get(a), Tensor)]

    def first_ids(self, n: fx.Node) -> Tensor | None:
        tracked = self.tracked_ids(n)
        return tracked[0] if tracked else None

    def tracked_input(self, n: fx.Node) -> bool:
        """Whether the node's first input carries unit ids (a tensor's, or a tuple of tensors')."""
        first = n.all_input_nodes[0] if n.all_input_nodes else None
        return first is not None and self.ids.get(first) is not None

    def apply_to_ids(self, n: fx.Node) -> Any:
        """The node's op applied to its inputs' ids in place of the data (untracked inputs: their values)."""
        args, kwargs = self._arg_ids(n.args), self._arg_ids(n.kwargs)
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        if n.op == "call_function":
            return n.target(*args, **kwargs)
        return self.fetch_attr(n.target)(*args, **kwargs)

    def _arg_ids(self, a: Any) -> Any:
        return fx.node.map_arg(a, lambda node: self.ids[node] if self.ids.get(node) is not None else self.env[node])

    def note_fold(self, n: fx.Node) -> None:
        """A module applied right after a weight layer (its BatchNorm): the layer's fold."""
        first = n.all_input_nodes[0] if n.all_input_nodes else None
        if n.op == "call_module" and first is not None and first.op == "call_module" and first.target in self.layers:
            self.folds[str(first.target)] = str(n.target)

    def note_norm(self, n: fx.Node) -> None:
        """A normalisation module: the unit of each channel it scales (a LayerNorm's last dim, else dim 1), first
        call only; none when a channel carries several units."""
        module = self.fetch_attr(n.target) if n.op == "call_module" else None
        ids = self.first_ids(n)
        if not isinstance(module, NORM_MODULES) or ids is None or ids.dim() < 2 or n.target in self.norms:
            return
        per = per_feature(ids) if isinstance(module, nn.LayerNorm) else per_channel(ids)
        if per is not None:
            self.norms[str(n.target)] = per
