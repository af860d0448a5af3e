"""Dale types through attention: the token mixing ``softmax(q k^T / sqrt(d) + M) v`` keeps units apart.

Each output row is a convex combination (softmax weights, >= 0, summing to 1) of the value rows, feature by feature:
o[..., l, j] = sum_s A[..., l, s] v[..., s, j]. Feature j of the output is therefore feature j of the values mixed
over tokens with non-negative weights, never across features: it carries the unit of v's feature j (the unit
produced by the value projection), and a layer reading it (the output projection) reads those units, one type per
neuron through the attention. The queries and keys only set the mixing weights A (activity x activity): they carry
no synapse between units and hand no type on. Over a mask M of -inf the weights stay >= 0, so the same holds.

``nn.MultiheadAttention`` packs its q/k/v projection into one ``in_proj_weight`` inside one module, which the graph
cannot see into: under ``types: graph`` it is a ConfigError naming the module (build attention from ``nn.Linear``
projections and ``F.scaled_dot_product_attention``, as timm's ``Attention`` does, to have its types carried).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.fx as fx
from torch import Tensor

from biocircuits.errors import ConfigError

from .ops import passthrough, reduce_like

if TYPE_CHECKING:
    from .propagate import Propagate


def attention_values(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """``F.scaled_dot_product_attention(q, k, v, ...)``: the output (..., L, d) carries the units of v (..., S, d)
    when each of v's features holds one unit over its tokens (the token dim is cut to L, as pooling does); else
    :func:`~.ops.passthrough`."""
    value = n.args[2] if len(n.args) > 2 else n.kwargs.get("value")
    ids = prop.ids.get(value) if isinstance(value, fx.Node) else None
    if isinstance(real, Tensor) and isinstance(ids, Tensor) and ids.dim() == real.dim():
        carried = reduce_like(ids, real.shape)
        if carried is not None:
            return carried
    return passthrough(prop, n, real)


def packed_attention(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """``nn.MultiheadAttention``: a ConfigError naming it (its packed in-projection is inside the module)."""
    raise ConfigError(
        f"{n.target}: Dale types cannot be followed through nn.MultiheadAttention (its q/k/v projection is one "
        "packed in_proj_weight inside the module, not a weight layer the graph can type)",
        key="dale.types",
        given="graph",
        suggestion="build the attention from nn.Linear q/k/v projections and F.scaled_dot_product_attention (as "
        "timm's Attention does; its types are carried through the token mixing), or exclude the model from Dale",
    )
