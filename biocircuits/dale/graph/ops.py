"""Per-op unit propagation: how each op of the traced graph carries unit ids from its inputs to its output.

[`UNIT_RULES`][biocircuits.dale.graph.ops.UNIT_RULES] maps an op to its rule, ``rule(prop, node, real) -> ids``
(``prop`` the running [`Propagate`][biocircuits.dale.graph.propagate.Propagate], ``real`` the op's actual output; the
ids have its structure). The key is the function of a ``call_function`` node (``torch.cat``, ``operator.add``), the
method name of a ``call_method`` node (``"view"``) or the module class of a ``call_module`` node (``nn.Flatten``,
subclasses included). An op not in the table follows [`passthrough`][biocircuits.dale.graph.ops.passthrough]. A new op
joins with one entry, e.g. ``UNIT_RULES[torch.roll] = structural``.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from .merging import merging

if TYPE_CHECKING:
    from .propagate import Propagate

UnitRule = Callable[["Propagate", fx.Node, Any], Any]

# fmt: off
# ops applied to the unit ids as they are applied to the data
STRUCTURAL_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "chunk", "split",
                      "unsqueeze", "squeeze", "narrow", "__getitem__", "expand", "repeat", "unflatten", "movedim",
                      "t", "expand_as", "view_as", "reshape_as", "unbind"}
STRUCTURAL_FUNCTIONS = {torch.cat, torch.concat, torch.flatten, torch.reshape, torch.transpose, torch.permute,
                        operator.getitem, torch.chunk, torch.split, torch.stack, torch.squeeze, torch.unsqueeze,
                        torch.narrow, torch.channel_shuffle, F.pixel_shuffle, F.pixel_unshuffle, torch.movedim,
                        torch.unbind}
STRUCTURAL_MODULES = (nn.Flatten, nn.Unflatten, nn.ChannelShuffle, nn.PixelShuffle, nn.PixelUnshuffle, nn.Identity)
# ops whose two tensor operands are one neuron per element (their units merge)
MERGING_FUNCTIONS = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
                     torch.add, torch.sub, torch.mul}
MERGING_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_"}
# fmt: on


def structural(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """Data movement: the op applied to the ids themselves (a concatenation lists its inputs' units, a flattened
    feature keeps its channel's unit, a channel shuffle permutes the units); fresh units when the result is not
    an id tensor of the output's shape. An op whose first input carries no ids follows
    [`passthrough`][biocircuits.dale.graph.ops.passthrough]."""
    if not prop.tracked_input(n):
        return passthrough(prop, n, real)
    ids = prop.apply_to_ids(n)
    if not isinstance(real, Tensor):  # several outputs (chunk, split, unbind): the ids of each
        return ids
    if isinstance(ids, Tensor) and ids.dtype == torch.long and ids.shape == real.shape:
        return ids
    return prop.opaque(n, real)


def passthrough(prop: Propagate, n: fx.Node, real: Any) -> Any:
    """Any other op: the ids of its first tracked input when its output has their shape (activations, BatchNorm,
    dropout) or when every dim it changed held one unit along it (pooling, means over space or time); fresh units
    otherwise (attention, an unknown op, an op returning several tensors). A module right after a weight layer is
    noted as that layer's fold ([`folds`][biocircuits.dale.graph.units.UnitGraph.folds])."""
    if not isinstance(real, Tensor):
        return prop.opaque(n, real)
    ids = prop.first_ids(n)
    prop.note_fold(n)
    prop.note_norm(n)
    if ids is not None and tuple(ids.shape) == tuple(real.shape):
        return ids
    reduced = reduce_like(ids, real.shape) if ids is not None else None
    if reduced is not None:
        return reduced
    return prop.opaque(n, real)


def _constant_along(ids: Tensor, dim: int) -> bool:
    return bool((ids == ids.narrow(dim, 0, 1)).all())


def reduce_like(ids: Tensor, shape: torch.Size) -> Tensor | None:
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


UNIT_RULES: dict[Any, UnitRule] = {
    **dict.fromkeys((*STRUCTURAL_METHODS, *STRUCTURAL_FUNCTIONS, *STRUCTURAL_MODULES), structural),
    **dict.fromkeys((*MERGING_METHODS, *MERGING_FUNCTIONS), merging),
}


# rules of other libraries' functions, by (module, qualified name): found without importing the library
NAMED_RULES: dict[tuple[str, str], UnitRule] = {
    ("torchvision.models.swin_transformer", "_patch_merging_pad"): structural  # Swin's 2x2 patch gather (a cat)
}


def _attention_rules() -> dict[Any, UnitRule]:
    from .attention import NAMED_ATTENTION_RULES, attention_values, packed_attention  # they build on these rules

    NAMED_RULES.update(NAMED_ATTENTION_RULES)
    return {F.scaled_dot_product_attention: attention_values, nn.MultiheadAttention: packed_attention}


UNIT_RULES.update(_attention_rules())


def rule_for(n: fx.Node, module: nn.Module | None = None) -> UnitRule:
    """The rule of node ``n`` (``module``: the module a ``call_module`` node calls): its
    [`UNIT_RULES`][biocircuits.dale.graph.ops.UNIT_RULES] entry (a library's function: its
    [`NAMED_RULES`][biocircuits.dale.graph.ops.NAMED_RULES] entry), the first class of the module's MRO that has one,
    else [`passthrough`][biocircuits.dale.graph.ops.passthrough]."""
    if n.op == "call_module" and module is not None:
        return next((UNIT_RULES[c] for c in type(module).__mro__ if c in UNIT_RULES), passthrough)
    if n.op == "call_method":
        return UNIT_RULES.get(n.target, passthrough)
    if n.op == "call_function":
        found = UNIT_RULES.get(n.target)
        key = (getattr(n.target, "__module__", None), getattr(n.target, "__qualname__", None))
        return found or NAMED_RULES.get(key, passthrough)
    return passthrough
