"""Dale types through attention: the token mixing ``softmax(q k^T / sqrt(d) + M) v`` keeps units apart.

Each output row is a convex combination (softmax weights, >= 0, summing to 1) of the value rows, feature by feature:
o[..., l, j] = sum_s A[..., l, s] v[..., s, j]. Feature j of the output is therefore feature j of the values mixed
over tokens with non-negative weights, never across features: it carries the unit of v's feature j (the unit
produced by the value projection), and a layer reading it (the output projection) reads those units, one type per
neuron through the attention. The queries and keys only set the mixing weights A (activity x activity): they carry
no synapse between units and hand no type on. Over a mask M of -inf the weights stay >= 0, so the same holds.

``nn.MultiheadAttention`` packs its q/k/v projection into one ``in_proj_weight`` (3E, E) inside one module, which the
graph cannot see into ([`packed_attention`][biocircuits.dale.graph.attention.packed_attention]). Converted (a
``FeedbackMultiheadAttention``), the packed in-projection is a Dale layer of its own: its E columns read the E units
of the query, key and value inputs (the residual stream), so W_q, W_k and W_v's column j all carry the sign of input
unit j (for cross-attention, unit j of the query and of the key/value inputs are one type, as the inputs of a layer
called twice are). Its 3E outputs are two producers: the queries and keys (``<name> (queries, keys)``, 2E units no
layer reads: they only set the mixing weights) and the values (``<name> (values)``, E units), which the token mixing
keeps apart and its ``out_proj`` reads. A plain module (not converted) is one fresh producer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
from torch import Tensor

from biocircuits.errors import ConfigError

from .layers import per_feature
from .ops import passthrough, reduce_like

if TYPE_CHECKING:
    from .propagate import Propagate


def attention_values(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """``F.scaled_dot_product_attention(q, k, v, ...)``: the output (..., L, d) carries the units of v (..., S, d)
    when each of v's features holds one unit over its tokens (the token dim is cut to L, as pooling does); else
    [`passthrough`][biocircuits.dale.graph.ops.passthrough]."""
    value = n.args[2] if len(n.args) > 2 else n.kwargs.get("value")
    ids = prop.ids.get(value) if isinstance(value, fx.Node) else None
    if isinstance(real, Tensor) and isinstance(ids, Tensor) and ids.dim() == real.dim():
        carried = reduce_like(ids, real.shape)
        if carried is not None:
            return carried
    return passthrough(prop, n, real)


def _input_nodes(n: fx.Node) -> list[fx.Node]:
    """The query, key and value nodes of an ``nn.MultiheadAttention`` call (positional or by keyword)."""
    names = ("query", "key", "value")
    given = [n.args[i] if len(n.args) > i else n.kwargs.get(k) for i, k in enumerate(names)]
    return [a for a in given if isinstance(a, fx.Node)]


def _rooted(prop: Propagate, ids: Tensor) -> Tensor:
    """Each unit id replaced by its class's representative so far (units merged by an addition are one unit)."""
    unique, where = torch.unique(ids, return_inverse=True)
    return torch.tensor([prop.uf.find(i) for i in unique.tolist()], dtype=ids.dtype)[where]


def _read_inputs(prop: Propagate, n: fx.Node, name: str) -> None:
    """Record the units of each feature (last dim) of the query, key and value inputs as what the in-projection
    ``name`` reads (one entry per distinct input: a layer called several times); a ConfigError when a feature
    carries several units (after merging: ViT's class token and patch tokens, both added to the positional embedding's
    feature j, are one unit per feature)."""
    seen: set[fx.Node] = set()
    for node in _input_nodes(n):
        ids = prop.ids.get(node)
        if node in seen or not isinstance(ids, Tensor):
            continue
        seen.add(node)
        per = per_feature(_rooted(prop, ids))
        if per is None:
            raise ConfigError(
                f"{name}: an input feature of this attention carries several units (an op before it mixes "
                "features in a way the graph cannot follow)",
                key="dale.types",
                given="graph",
                suggestion="set dale.types: per_layer for this model",
            )
        prop.inputs.setdefault(name, []).append(per)


def _project(prop: Propagate, qkv: str, proj: str, out: Tensor) -> Tensor:
    """The units of an in-projection ``qkv`` (3E outputs: ``<qkv> (queries, keys)``, 2E units, and
    ``<qkv> (values)``, E units) and of the output projection ``proj``, which reads the values; returns the ids of
    the attention's output ``out`` (E features, last dim): ``proj``'s units."""
    width = out.shape[-1]
    qk = prop.fresh(f"{qkv} (queries, keys)", out.new_empty(2 * width), 0, "layer")
    values = prop.fresh(f"{qkv} (values)", out.new_empty(width), 0, "layer")
    prop.outputs.setdefault(qkv, []).append(torch.cat([qk, values]))
    prop.inputs.setdefault(proj, []).append(values)
    ids = prop.fresh(proj, out, out.dim() - 1, "layer")
    prop.outputs.setdefault(proj, []).append(per_feature(ids))
    return ids


def packed_attention(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """``nn.MultiheadAttention`` (a leaf: its packed in-projection is inside it). Converted (its ``out_proj`` a weight
    layer): the in-projection reads the units of the query, key and value features and produces
    ``<name> (queries, keys)`` (2E units) and ``<name> (values)`` (E units), which ``out_proj`` reads; the output
    carries ``out_proj``'s units. Plain: the output is one fresh producer. Returned attention weights: fresh."""
    out = real[0] if isinstance(real, tuple) else real
    if not isinstance(out, Tensor):
        return prop.opaque(n, real)
    dim, target = out.dim() - 1, str(n.target)
    name = f"{target}.out_proj"
    if name not in prop.layers:
        ids = prop.fresh(target, out, dim, "op")
    else:
        _read_inputs(prop, n, target)
        ids = _project(prop, target, name, out)
    if not isinstance(real, tuple):
        return ids
    return (
        ids,
        *(
            prop.fresh(f"{n.name}[{i}]", t, t.dim() - 1, "op") if isinstance(t, Tensor) else None
            for i, t in enumerate(real[1:], 1)
        ),
    )


def _layer_of(prop: Propagate, node: Any) -> str | None:
    """The weight layer whose ``weight`` the ``get_attr`` node reads (None for anything else)."""
    if isinstance(node, fx.Node) and node.op == "get_attr" and str(node.target).endswith(".weight"):
        name = str(node.target)[: -len(".weight")]
        return name if name in prop.layers else None
    return None


def window_attention(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """torchvision's ``shifted_window_attention(x, qkv.weight, proj.weight, ...)`` (Swin v1 and v2; its owner reads
    the two layers' weights without calling them): within each (shifted) window the token mixing is a convex
    combination per feature (the relative-position bias, the shift mask and v2's cosine logit scale only change the
    logits), so ``qkv`` reads the units of x's features (N, H, W, C) and ``proj`` reads its values, as in
    [`packed_attention`][biocircuits.dale.graph.attention.packed_attention]. The padding and the cyclic shift move
    tokens, not features. When the weights are not two weight layers': fresh units."""
    qkv, proj = (_layer_of(prop, a) for a in n.args[1:3])
    x = n.args[0] if n.args else None
    ids = prop.ids.get(x) if isinstance(x, fx.Node) else None
    if qkv is None or proj is None or not isinstance(ids, Tensor) or not isinstance(real, Tensor):
        return prop.opaque(n, real)
    per = per_feature(ids)
    if per is None:
        raise ConfigError(
            f"{qkv}: an input feature of this window attention carries several units",
            key="dale.types",
            given="graph",
            suggestion="set dale.types: per_layer for this model",
        )
    prop.inputs.setdefault(qkv, []).append(per)
    return _project(prop, qkv, proj, real)


# library functions that read weight layers' weights directly (see biocircuits.feedback.owners), by (module, name)
NAMED_ATTENTION_RULES = {("torchvision.models.swin_transformer", "shifted_window_attention"): window_attention}
