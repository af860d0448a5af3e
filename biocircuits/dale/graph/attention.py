"""Dale types through attention: the token mixing ``softmax(q k^T / sqrt(d) + M) v`` keeps units apart.

Each output row is a convex combination (softmax weights, >= 0, summing to 1) of the value rows, feature by feature:
o[..., l, j] = sum_s A[..., l, s] v[..., s, j]. Feature j of the output is therefore feature j of the values mixed
over tokens with non-negative weights, never across features: it carries the unit of v's feature j (the unit
produced by the value projection), and a layer reading it (the output projection) reads those units, one type per
neuron through the attention. The queries and keys only set the mixing weights A (activity x activity): they carry
no synapse between units and hand no type on. Over a mask M of -inf the weights stay >= 0, so the same holds.

``nn.MultiheadAttention`` packs its q/k/v projection into one ``in_proj_weight`` inside one module, which the graph
cannot see into: the values it mixes are a producer of their own
([`packed_attention`][biocircuits.dale.graph.attention.packed_attention]), which its ``out_proj`` reads; the packed
in-projection is not Dale-constrained (build attention from ``nn.Linear`` projections and
``F.scaled_dot_product_attention``, as timm's ``Attention`` does, to have every projection typed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.fx as fx
from torch import Tensor

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


def packed_attention(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """``nn.MultiheadAttention`` (a leaf: its packed in-projection is inside it): the values it mixes are a producer of
    its own, ``<name> (values)``, one unit per feature (the token mixing keeps them apart, as above); a converted
    module's ``out_proj`` (a weight layer) reads them and produces the output's units; a plain one's output is one
    fresh producer. The in-projection itself is no weight layer: Dale does not constrain it."""
    out = real[0] if isinstance(real, tuple) else real
    if not isinstance(out, Tensor):
        return prop.opaque(n, real)
    dim, name = out.dim() - 1, f"{n.target}.out_proj"
    if name not in prop.layers:
        ids = prop.fresh(str(n.target), out, dim, "op")
    else:
        values = prop.fresh(f"{n.target} (values)", out, dim, "op")
        prop.inputs.setdefault(name, []).append(per_feature(values))
        ids = prop.fresh(name, out, dim, "layer")
        prop.outputs.setdefault(name, []).append(per_feature(ids))
    if not isinstance(real, tuple):
        return ids
    return (
        ids,
        *(
            prop.fresh(f"{n.name}[{i}]", t, t.dim() - 1, "op") if isinstance(t, Tensor) else None
            for i, t in enumerate(real[1:], 1)
        ),
    )
