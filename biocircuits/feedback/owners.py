"""Modules that read a child layer's weight without calling the child (torchvision's Swin attention passes
``self.qkv.weight`` and ``self.proj.weight`` to a function that calls ``F.linear`` on them).

Such an *owner* is converted by class swap to ``Routed<Owner>``: its own forward runs unchanged inside a
[`RouteLinear`][biocircuits.feedback.owners.RouteLinear] mode, which sends every ``F.linear(x, W, b)`` whose ``W`` is a
converted child's weight through that child's feedback op (grad_x = delta s B, grad_W = delta^T x), with the bias the
owner passed. Every other op of the forward runs as it is (plain autograd: the attention product, masks, biases added to
the logits). [`OWNER_CLASSES`][biocircuits.feedback.owners.OWNER_CLASSES] lists the owners; ``bc.remove`` gives them
their class back.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from .functional import feedback_linear
from .layers import FeedbackLayer


class RouteLinear(TorchFunctionMode):
    """Within this mode, ``F.linear(x, W, b)`` for a ``W`` in ``layers`` (id of the weight -> converted layer) is
    that layer's feedback linear op; any other call runs unchanged."""

    def __init__(self, layers: dict[int, FeedbackLayer]) -> None:
        super().__init__()
        self.layers = layers

    def __torch_function__(self, func, types, args=(), kwargs=None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and len(args) >= 2 and id(args[1]) in self.layers:
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            return self.routed(self.layers[id(args[1])], args[0], args[1], bias)
        return func(*args, **kwargs)

    @staticmethod
    def routed(layer: FeedbackLayer, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """The layer's feedback linear op on ``x``, with the layer's forward pre-hooks and hooks run as a call of the
        layer would run them (a Dale population norm divides ``x``; a probe reads the output)."""
        for hook in layer._forward_pre_hooks.values():
            changed = hook(layer, (x,))
            x = changed[0] if isinstance(changed, tuple) else x if changed is None else changed
        if layer._needs_feedback(x, weight):
            out = layer._with_feedback(feedback_linear, x, weight, bias)
        else:
            out = F.linear(x, weight, bias)
        for hook in layer._forward_hooks.values():
            changed = hook(layer, (x,), out)
            out = out if changed is None else changed
        return out


class RoutedOwner:
    """Mixin of a converted owner: its plain forward, with its converted children's weights routed."""

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        plain = self.__dict__["_plain_owner_class"]
        layers = {id(m.weight): m for m in self.children() if isinstance(m, FeedbackLayer)}
        if not layers:
            return plain.forward(self, *args, **kwargs)
        with RouteLinear(layers):
            return plain.forward(self, *args, **kwargs)


_ROUTED: dict[type, type] = {}


def route(module: nn.Module) -> nn.Module:
    """Swap ``module``'s class to ``Routed<Class>`` in place (once) and return it."""
    plain = type(module)
    if isinstance(module, RoutedOwner):
        return module
    if plain not in _ROUTED:
        _ROUTED[plain] = type(
            f"Routed{plain.__name__}",
            (RoutedOwner, plain),
            {"__module__": plain.__module__, "__qualname__": f"Routed{plain.__qualname__}"},
        )
    module.__dict__["_plain_owner_class"] = plain
    module.__class__ = _ROUTED[plain]
    return module


def unroute(module: nn.Module) -> bool:
    """Give a routed owner its class back; True when it was one."""
    plain = module.__dict__.pop("_plain_owner_class", None)
    if plain is None:
        return False
    module.__class__ = plain
    return True


def _swin(module: Any) -> dict[type[nn.Module], tuple[str, ...]]:
    return {module.ShiftedWindowAttention: ("qkv", "proj"), module.ShiftedWindowAttentionV2: ("qkv", "proj")}


# owner type -> the children whose weights its forward reads without calling them (yours: add an entry)
OWNER_CLASSES: dict[type[nn.Module], tuple[str, ...]] = {}
# the owners other libraries ship, looked up only when their module is imported (a model built from it is)
THIRD_PARTY_OWNERS = {"torchvision.models.swin_transformer": _swin}


def owner_children(module: nn.Module) -> tuple[str, ...]:
    """The names of the children whose weight ``module`` reads directly (its
    [`OWNER_CLASSES`][biocircuits.feedback.owners.OWNER_CLASSES] entry, or that of an imported library in
    [`THIRD_PARTY_OWNERS`][biocircuits.feedback.owners.THIRD_PARTY_OWNERS])."""
    table = dict(OWNER_CLASSES)
    for name, build in THIRD_PARTY_OWNERS.items():
        if name in sys.modules:
            table = {**build(sys.modules[name]), **table}
    return next((table[cls] for cls in type(module).__mro__ if cls in table), ())
