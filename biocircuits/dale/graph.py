"""One type per neuron: Dale types belong to the unit that produces an activation (a channel or a feature) and
hold in every layer that reads it. The units are found by following the model's graph (``torch.fx``).

Every tensor in the traced graph carries an integer *unit id* per element (batch size 1, so the ids are small):

* the model input and every weight layer's output get fresh ids, one per channel (dim 1 of a conv output, the
  last dim of a linear output): these are the *producers*;
* data-movement ops (``cat``, ``view`` / ``reshape`` / ``flatten``, ``permute`` / ``transpose``, ``chunk`` /
  ``split``, indexing, ``channel_shuffle``...) are applied to the ids themselves, so a concatenation lists its
  inputs' units, a flattened feature inherits its channel's unit and a channel shuffle permutes the units;
* ``a + b``, ``a - b`` and ``a * b`` of two tracked tensors of the output's shape *merge* the units they pair
  element by element (a residual sum is one neuron: its operands must share a type), union-find over unit ids; an
  operand broadcast to the output (a scalar, a per-channel gate) is not merged;
* any other op passes the ids through when its output has their shape (activations, BatchNorm, dropout...) or
  when every dim it changes held one unit along it (pooling, means over space or time); an op that mixes units
  (attention, an unknown op) starts fresh units, along dim 1 (along the last dim when the model's first weight
  layer is linear, as in sequence models).

Each weight layer then reads a vector ``u`` of unit ids, one per input channel (``in_features`` / ``in_channels``),
and its Dale signs are ``s = sign[u]``. Signs are given per producer, in graph order: producer p of width n gets
``assign_signs(n, fraction, assignment, seed)`` (the E units first for ``block``), and a unit merged with an
earlier producer's unit takes that unit's sign. In a chain (no concatenation) every consumer reads one producer
of its own width, so the signs are exactly the per-layer ones of earlier versions.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.core.celltypes import assign_signs
from biocircuits.core.layers import WEIGHT_LAYER_TYPES, weight_layers
from biocircuits.errors import ConfigError

# ops applied to the unit ids as they are applied to the data
STRUCTURAL_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "chunk", "split",
                      "unsqueeze", "squeeze", "narrow", "__getitem__", "expand", "repeat", "unflatten", "movedim",
                      "t", "expand_as", "view_as", "reshape_as", "unbind"}
STRUCTURAL_FUNCTIONS = {torch.cat, torch.concat, torch.flatten, torch.reshape, torch.transpose, torch.permute,
                        operator.getitem, torch.chunk, torch.split, torch.stack, torch.squeeze, torch.unsqueeze,
                        torch.narrow, torch.channel_shuffle, F.pixel_shuffle, F.pixel_unshuffle, torch.movedim,
                        torch.unbind}
STRUCTURAL_MODULES = (nn.Flatten, nn.Unflatten, nn.ChannelShuffle, nn.PixelShuffle, nn.PixelUnshuffle,
                      nn.Identity)
# ops whose two tensor operands are one neuron per element (their units merge)
MERGING_FUNCTIONS = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
                     torch.add, torch.sub, torch.mul}
MERGING_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_"}
GUESSED_SIZES = (32, 28, 64, 224, 96, 299, *[s for s in range(1, 65) if s not in (28, 32, 64)])


@dataclass
class Producer:
    """A producer of units: a weight layer's output channels, the model input, or an opaque op's output."""

    name: str
    offset: int
    width: int
    kind: str = "layer"   # layer | input | op


@dataclass
class UnitGraph:
    """The units of a model and who reads them.

    ``inputs[layer]``: unit id of each input channel of the weight layer (shape (in,)); ``outputs[layer]``: unit id
    of each of its output channels (shape (out,)); ``root``: union-find representative of every unit id;
    ``folds[layer]``: the normalisation module applied right after the layer (its per-channel gain can flip the
    sign of every synapse onto a unit, see :mod:`biocircuits.dale.effective`)."""

    producers: list[Producer]
    inputs: dict[str, Tensor] = field(default_factory=dict)
    outputs: dict[str, Tensor] = field(default_factory=dict)
    root: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    folds: dict[str, str] = field(default_factory=dict)

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
            roots = self.root[p.offset:p.offset + p.width]
            fresh = by_root[roots] == 0
            signs = assign_signs(p.width, excitatory_fraction, assignment, seed)
            by_root[roots[fresh]] = signs[fresh]
        return by_root[self.root]


class _UnionFind:
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
            self.parent[max(ra, rb)] = min(ra, rb)   # the earlier unit stays the representative


class _Tracer(fx.Tracer):
    """Weight layers are leaves; remembers the module being traced so a failure can name it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, WEIGHT_LAYER_TYPES) or super().is_leaf_module(m, qualname)

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        self.stack.append(self.path_of_module(m))
        try:
            out = super().call_module(m, forward, args, kwargs)
        except Exception:
            self.failed_in = self.failed_in or self.stack[-1]   # the innermost module whose forward failed
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
        raise ConfigError(f"cannot follow the graph to give each neuron one Dale type: tracing stops in "
                          f"{where or 'the model forward'} ({type(err).__name__}: {str(err).splitlines()[0][:160]})",
                          key="dale.types", given="graph",
                          suggestion="make that forward traceable by torch.fx (no data-dependent control flow), "
                                     "or set dale.types: per_layer (types per consuming layer, a unit may then "
                                     "be E for one layer and I for another)") from None
    return fx.GraphModule(model, graph)


class _Propagate(fx.Interpreter):
    """Runs the graph on a sample and carries unit ids beside every tensor (see the module docstring)."""

    def __init__(self, gm: fx.GraphModule, layers: dict[str, nn.Module]) -> None:
        super().__init__(gm)
        self.layers = layers
        self.ids: dict[fx.Node, Any] = {}
        self.producers: list[Producer] = []
        self.uf = _UnionFind()
        self.inputs: dict[str, list[Tensor]] = {}
        self.outputs: dict[str, list[Tensor]] = {}
        self.folds: dict[str, str] = {}
        self.n = 0
        # the input's units lie along its last dim when the first weight layer is a linear one, else along dim 1
        first = next(iter(layers.values()), None)
        self.features_last = isinstance(first, nn.Linear)

    def call_module(self, target: str, args: tuple, kwargs: dict) -> Any:
        module = self.fetch_attr(target)
        if target in self.layers:   # the plain torch forward: no feedback rule, no hooks, no state advanced
            plain = next(c for c in type(module).__mro__ if c in WEIGHT_LAYER_TYPES)
            return plain.forward(module, *args, **kwargs)
        return super().call_module(target, args, kwargs)

    def fresh(self, name: str, like: Tensor, dim: int, kind: str) -> Tensor:
        width = like.shape[dim] if like.dim() else 1
        self.producers.append(Producer(name, self.n, width, kind))
        ids = torch.arange(self.n, self.n + width)
        self.n += width
        if not like.dim():
            return ids[0]
        shape = [1] * like.dim()
        shape[dim] = width
        return ids.view(shape).expand(like.shape).contiguous()

    def run_node(self, n: fx.Node) -> Any:
        real = super().run_node(n)
        self.ids[n] = self.unit_ids(n, real)
        for done in self.user_to_last_uses.get(n, []):   # free the ids no later node reads
            self.ids.pop(done, None)
        return real

    def _arg_ids(self, a: Any) -> Any:
        return fx.node.map_arg(a, lambda node: self.ids[node] if self.ids.get(node) is not None else self.env[node])

    def _first_ids(self, n: fx.Node) -> Tensor | None:
        for a in n.all_input_nodes:
            if isinstance(self.ids.get(a), Tensor):
                return self.ids[a]
        return None

    def unit_ids(self, n: fx.Node, real: Any) -> Any:
        if n.op == "placeholder":
            if not isinstance(real, Tensor):
                return None
            dim = real.dim() - 1 if self.features_last or real.dim() < 2 else 1
            return self.fresh("<input>", real, dim, "input")
        if n.op == "output":
            return None
        if isinstance(real, tuple | list) and any(isinstance(t, Tensor) for t in real):
            if self._structural(n) and self._tracked_input(n):
                return self._apply(n)
            # an opaque op returning several tensors (attention, a recurrent layer): fresh units for each
            return tuple(self.fresh(f"{n.name}[{i}]", t, self.unit_dim(t), "op") if isinstance(t, Tensor) else None
                         for i, t in enumerate(real))
        if not isinstance(real, Tensor):
            return None
        if n.op == "call_module" and n.target in self.layers:
            return self._layer(n, real)
        if self._structural(n) and self._tracked_input(n):
            ids = self._apply(n)
            if isinstance(ids, Tensor) and ids.dtype == torch.long and ids.shape == real.shape:
                return ids
            return self.fresh(n.name, real, self.unit_dim(real), "op")
        if self._merging(n):
            return self._merge(n, real)
        ids = self._first_ids(n)
        if n.op == "call_module" and n.all_input_nodes and n.all_input_nodes[0].op == "call_module" \
                and n.all_input_nodes[0].target in self.layers:
            self.folds[str(n.all_input_nodes[0].target)] = str(n.target)
        if ids is not None and tuple(ids.shape) == tuple(real.shape):
            return ids
        reduced = _reduce_like(ids, real.shape) if ids is not None else None
        if reduced is not None:   # pooling, means: the dims that changed held one unit each
            return reduced
        return self.fresh(n.name, real, self.unit_dim(real), "op")

    def unit_dim(self, t: Tensor) -> int:
        """Where an opaque op's fresh units lie: the last dim in a model whose first layer is linear, else dim 1."""
        return 0 if t.dim() < 2 else (t.dim() - 1 if self.features_last else 1)

    def _tracked_input(self, n: fx.Node) -> bool:
        """Whether the node's first input carries unit ids (a tensor's, or a tuple of tensors')."""
        first = n.all_input_nodes[0] if n.all_input_nodes else None
        return first is not None and self.ids.get(first) is not None

    def _structural(self, n: fx.Node) -> bool:
        if n.op == "call_method":
            return n.target in STRUCTURAL_METHODS
        if n.op == "call_function":
            return n.target in STRUCTURAL_FUNCTIONS
        return n.op == "call_module" and isinstance(self.fetch_attr(n.target), STRUCTURAL_MODULES)

    def _merging(self, n: fx.Node) -> bool:
        return (n.op == "call_function" and n.target in MERGING_FUNCTIONS) or \
            (n.op == "call_method" and n.target in MERGING_METHODS)

    def _apply(self, n: fx.Node) -> Any:
        args, kwargs = self._arg_ids(n.args), self._arg_ids(n.kwargs)
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        if n.op == "call_function":
            return n.target(*args, **kwargs)
        return self.fetch_attr(n.target)(*args, **kwargs)

    def _merge(self, n: fx.Node, real: Tensor) -> Tensor:
        tracked = [self.ids[a] for a in n.all_input_nodes if isinstance(self.ids.get(a), Tensor)]
        tensors = [t for t in tracked if tuple(t.shape) == tuple(real.shape)]   # broadcast operands: not merged
        if not tensors:
            return self.fresh(n.name, real, self.unit_dim(real), "op")
        for other in tensors[1:]:
            pairs = torch.unique(torch.stack([tensors[0].reshape(-1), other.reshape(-1)]), dim=1)
            for a, b in pairs.T.tolist():
                self.uf.union(a, b)
        return tensors[0]

    def _layer(self, n: fx.Node, real: Tensor) -> Tensor:
        name = str(n.target)
        ids = self._first_ids(n)
        layer = self.layers[name]
        conv = not isinstance(layer, nn.Linear)
        if ids is not None:
            per = _per_channel(ids) if conv else _per_feature(ids)
            if per is None:
                raise ConfigError(f"{name}: an input channel of this layer carries several units (an op before "
                                  "it mixes channels in a way the graph cannot follow)", key="dale.types",
                                  given="graph", suggestion="set dale.types: per_layer for this model")
            self.inputs.setdefault(name, []).append(per)
        out = self.fresh(name, real, 1 if conv else real.dim() - 1, "layer")
        self.outputs.setdefault(name, []).append(out.reshape(-1, out.shape[1] if conv else out.shape[-1])[0]
                                                 if out.dim() > 1 else out)
        return out


def _constant_along(ids: Tensor, dim: int) -> bool:
    return bool((ids == ids.narrow(dim, 0, 1)).all())


def _reduce_like(ids: Tensor, shape: torch.Size) -> Tensor | None:
    """The ids of an op's output of ``shape`` when every dim it changed (pooled, averaged, dropped) held one unit
    along it: those dims are cut to their first index (and broadcast, or dropped); None otherwise."""
    if ids.dim() == len(shape):
        changed = [d for d in range(ids.dim()) if ids.shape[d] != shape[d]]
        if not all(_constant_along(ids, d) for d in changed):
            return None
        for d in changed:
            ids = ids.narrow(d, 0, 1)
        return ids.expand(shape).contiguous()
    if ids.dim() > len(shape):
        for dropped in itertools.combinations(range(ids.dim()), ids.dim() - len(shape)):
            kept = [ids.shape[d] for d in range(ids.dim()) if d not in dropped]
            if kept == list(shape) and all(_constant_along(ids, d) for d in dropped):
                for d in sorted(dropped, reverse=True):
                    ids = ids.select(d, 0)
                return ids.contiguous()
    return None


def _per_channel(ids: Tensor) -> Tensor | None:
    """The unit of each channel (dim 1) when it is the same at every position, else None."""
    flat = ids.transpose(0, 1).reshape(ids.shape[1], -1)
    return flat[:, 0].clone() if bool((flat == flat[:, :1]).all()) else None


def _per_feature(ids: Tensor) -> Tensor | None:
    """The unit of each feature (last dim) when it is the same at every leading position, else None."""
    flat = ids.reshape(-1, ids.shape[-1])
    return flat[0].clone() if bool((flat == flat[:1]).all()) else None


def sample_input(model: nn.Module, shape: list[int] | None) -> list[Tensor]:
    """Candidate inputs (batch 1) to run the graph on: ``shape`` when given, else guessed from the first weight
    layer (a linear layer's width, or a conv's channels at a few spatial sizes)."""
    param = next(model.parameters(), None)
    kw = {"device": param.device if param is not None else "cpu",
          "dtype": param.dtype if param is not None and param.is_floating_point() else torch.float32}
    if shape is not None:
        return [torch.rand(1, *shape, **kw)]
    layers = weight_layers(model)
    if not layers:
        return []
    first = layers[0][1]
    if isinstance(first, nn.Linear):
        return [torch.rand(1, first.in_features, **kw)]
    nd = first.weight.dim() - 2
    return [torch.rand(1, first.in_channels, *([s] * nd), **kw) for s in GUESSED_SIZES]


@torch.no_grad()
def unit_graph(model: nn.Module, input_shape: list[int] | None = None) -> UnitGraph:
    """Trace ``model`` and follow its units (see the module docstring). The model runs once in eval mode on a
    random sample of batch size 1 (``input_shape`` without the batch dim, guessed when None), its weight layers
    with their plain torch forward, the global RNG state kept."""
    gm = trace(model)
    layers = dict(weight_layers(model))
    was_training = model.training
    errors: list[str] = []
    model.eval()
    try:
        for sample in sample_input(model, input_shape):
            prop = _Propagate(gm, layers)
            try:
                with torch.random.fork_rng(devices=[]):
                    prop.run(sample)
            except ConfigError:
                raise
            except Exception as err:   # a wrong guessed input size: try the next one
                errors.append(f"{tuple(sample.shape)}: {type(err).__name__}")
                continue
            return _finish(prop)
    finally:
        model.train(was_training)
    raise ConfigError("cannot run the model on a sample input to follow its units", key="dale.input_shape",
                      given=input_shape, expected="the shape of one input without the batch dimension",
                      suggestion="set dale.input_shape, e.g. [3, 32, 32] (tried " + "; ".join(errors[:6]) + ", ...)")


def _finish(prop: _Propagate) -> UnitGraph:
    n = prop.n
    for calls in (*prop.inputs.values(), *prop.outputs.values()):   # a layer called twice: one set of units
        for other in calls[1:]:
            if other.shape == calls[0].shape:
                for a, b in zip(calls[0].tolist(), other.tolist(), strict=True):
                    prop.uf.union(a, b)
    root = torch.tensor([prop.uf.find(i) for i in range(n)], dtype=torch.long)
    return UnitGraph(prop.producers, {k: v[0] for k, v in prop.inputs.items()},
                     {k: v[0] for k, v in prop.outputs.items()}, root, prop.folds)
