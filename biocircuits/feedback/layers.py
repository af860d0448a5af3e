"""Converted layers: subclasses of the torch layers whose backward uses the rule's feedback weight B.

A torch layer becomes a feedback layer in place (its class is swapped, as ``torch.nn.utils.parametrize``
does), so parameters, ``state_dict`` keys, device, dtype, memory format and hooks are all kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.core.interface import Attachments, attach

from .functional import _Shadow, feedback_conv, feedback_linear
from .rules import Feedback, FeedbackRule, make_rule


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    device = x.device.type
    if device in ("cpu", "cuda", "xpu", "mps") and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return None


class FeedbackLayer:
    """Mixin of every converted layer: gives ``rule`` and ``backward_weight()`` and calls the op.

    What is attached to the layer (its rule, a Dale enforcer, error transforms, plasticity rules) lives in
    ``layer.attachments`` ([`Attachments`][biocircuits.core.interface.Attachments]); an error pathway installed there
    maps the error delta arriving at the layer's output to the error the layer's backward uses."""

    attachments: Attachments

    @property
    def rule(self) -> FeedbackRule:
        return self.attachments.rule  # type: ignore[return-value]

    @property
    def qualname(self) -> str:
        return self.attachments.qualname

    def _init_feedback(self, rule: FeedbackRule, qualname: str, plain_class: type[nn.Module]) -> None:
        attach(self, rule, qualname)
        self.attachments.plain_class = plain_class

    @classmethod
    def convert(cls, module: nn.Module, rule: FeedbackRule, qualname: str = "") -> nn.Module:
        """Turn ``module`` (an instance of the torch base class, or of a subclass of it) into this class in place
        (a subclass keeps its own class as a base:
        [`feedback_class_for`][biocircuits.feedback.layers.feedback_class_for]); returns it."""
        if isinstance(module, FeedbackLayer):
            raise ValueError(f"{qualname or type(module).__name__} is already converted ({module.rule!r})")
        plain = type(module)
        module.__class__ = feedback_class_for(cls, plain)
        module._init_feedback(rule, qualname, plain)
        return module

    def backward_weight(self) -> Tensor | None:
        """The matrix s B (shaped like ``weight``) that the next backward pass sends the error through; None for a
        rule without one (direct feedback alignment sends the output error straight to the layer's input)."""
        if self.rule.direct_pathway(self) is not None:
            return None
        with torch.no_grad():
            feedback, scale = _as_pair(self.rule.feedback(self, self.weight, advance=False))
            return (feedback if scale is None else feedback * scale).detach()

    def _needs_feedback(self, x: Tensor, weight: Tensor) -> bool:
        return torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad)

    def _with_feedback(
        self, op: Callable[..., Tensor], x: Tensor, weight: Tensor, bias: Tensor | None, *args: Any
    ) -> Tensor:
        held = self.attachments
        rows = None if held.clock is None else held.clock.rows  # stream rows of a training forward
        presyn = None if rows is None or held.presynaptic is None else held.presynaptic(self, x, rows)
        direct = self.rule.direct_pathway(self)
        if direct is not None:  # the error reaches the input straight from the output (no B of W's shape)
            return self._with_error_pathway(op(x, weight, bias, None, *args, direct=direct, presyn=presyn), rows)
        feedback, scale = _as_pair(self.rule.feedback(self, weight, advance=self.training))
        transported = feedback is weight
        dtype = _autocast_dtype(x)
        if dtype is not None:
            # cast as autocast would; the op then runs on low-precision tensors, so x and B are saved in the
            # gradient's dtype and autocast's own casts inside the op are no-ops
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
            if not transported and feedback.dtype != dtype:
                feedback = self._cast_feedback(feedback, dtype)
        if scale is not None and feedback.numel() <= x.numel():  # scale the smaller of B and grad_input
            feedback, scale = feedback * scale, None
        # B = W is passed as None: the op must not see one tensor twice (torch.compile would break the graph)
        out = op(x, weight, bias, None if transported else feedback, *args, scale=scale, presyn=presyn)
        return self._with_error_pathway(out, rows)

    def _with_error_pathway(self, out: Tensor, rows: slice | None) -> Tensor:
        held = self.attachments
        if rows is not None and held.activity is not None:  # the last step's feedback signal in these units
            out = held.activity(self, out, rows)
        pathway = held.error_pathway
        if pathway is not None and not held.suspended and out.requires_grad:
            out.register_hook(pathway.hook(rows))
        return out

    def _cast_feedback(self, feedback: Tensor, dtype: torch.dtype) -> Tensor:
        """``feedback`` in ``dtype``; the cast of a buffer (a fixed B, a cached sign(W)) is cached until the
        buffer changes."""
        cache = self.__dict__.get("_feedback_cast")
        key = (feedback.data_ptr(), feedback._version, dtype, feedback.device)
        if cache is not None and cache[0] == key:
            return cache[1]
        cast = feedback.to(dtype)
        if any(feedback is b for b in self._buffers.values()):
            self.__dict__["_feedback_cast"] = (key, cast)
        return cast

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        # A plain torch checkpoint (e.g. torchvision weights) lacks the attachments' buffers: keep ours (the rule
        # sizes its lazily allocated buffers to the checkpoint's, and notes what the checkpoint holds).
        self.rule.prepare_load(self, state_dict, prefix)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        optional = {prefix + name for name in self.attachments.buffer_names()}
        missing_keys[:] = [k for k in missing_keys if k not in optional]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rule={self.rule!r}"


def _as_pair(result: Tensor | Feedback) -> Feedback:
    return (result, None) if isinstance(result, Tensor) else result


_COMBINED: dict[tuple[type, type], type] = {}


def feedback_class_for(feedback_cls: type[FeedbackLayer], plain: type[nn.Module]) -> type[FeedbackLayer]:
    """The class a module of type ``plain`` becomes: ``feedback_cls`` itself when ``plain`` is its torch base,
    else a subclass of both (``Feedback<Plain>``, made once) so ``isinstance(m, plain)`` and the subclass's
    other methods survive while the forward is the feedback one."""
    if plain in feedback_cls.__bases__:
        return feedback_cls
    key = (feedback_cls, plain)
    if key not in _COMBINED:
        _COMBINED[key] = type(
            f"Feedback{plain.__name__}",
            (feedback_cls, plain),
            {"__module__": plain.__module__, "__qualname__": f"Feedback{plain.__qualname__}"},
        )
    return _COMBINED[key]


class FeedbackLinear(FeedbackLayer, nn.Linear):
    """``nn.Linear`` whose backward computes grad_input = delta B (B from ``rule``), grad_W = delta^T x."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rule: str = "bp",
        options: dict[str, Any] | None = None,
        seed: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_feedback(make_rule(rule, options, seed), "", nn.Linear)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight
        if not self._needs_feedback(x, weight):
            return F.linear(x, weight, self.bias)
        return self._with_feedback(feedback_linear, x, weight, self.bias)

    def sequence_feedback(self) -> tuple[Tensor | None, float | Tensor | None] | None:
        """(B, s) for one training forward of a model that runs its own recursion through time with this layer's W
        and b (the rate RNN: y_t = r_t W^T + b at every step, errors sent back as s B^T delta_t), advancing the rule
        once for the whole sequence. None when the layer must be called step by step instead: under bp (B = W: left
        to autograd, which then equals plain autograd bit for bit), when something attached acts on each call (an
        error pathway, a trace or activity tap, a direct pathway, a forward hook), when a probe's forward keeps W for
        a shadow backprop, or when autocast is on."""
        held = self.attachments
        if (
            held.error_pathway is not None
            or held.clock is not None
            or held.presynaptic is not None
            or held.activity is not None
            or self._forward_hooks
            or self._forward_pre_hooks
            or _Shadow.save_weight
            or self.rule.direct_pathway(self) is not None
            or _autocast_dtype(self.weight) is not None
        ):
            return None
        weight = self.weight
        feedback, scale = _as_pair(self.rule.feedback(self, weight, advance=self.training))
        # B = W (bp): autograd's own step-by-step graph, so that bp equals plain autograd bit for bit
        return None if feedback is weight and scale is None else (feedback, scale)


class FeedbackConvNd(FeedbackLayer):
    """Shared forward of the N-d feedback convolutions: resolves padding modes and string paddings,
    then one zero-padded feedback convolution."""

    def _pad(self, x: Tensor) -> tuple[Tensor, list[int]]:
        n = len(self.kernel_size)
        if self.padding_mode != "zeros":
            return F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode), [0] * n
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return x, [0] * n
            total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
            left = [t // 2 for t in total]
            extra = [t - 2 * l for t, l in zip(total, left, strict=True)]
            if any(extra):  # as torch does for 'same': the odd pixel goes on the right
                pad: list[int] = []
                for e in reversed(extra):
                    pad += [0, e]
                x = F.pad(x, pad)
            return x, left
        return x, list(self.padding)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if not self._needs_feedback(x, weight):
            return super()._conv_forward(x, weight, bias)
        x, padding = self._pad(x)
        return self._with_feedback(feedback_conv, x, weight, bias, self.stride, padding, self.dilation, self.groups)


def _conv_init(base: type[nn.Module]):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        rule: str = "bp",
        options: dict[str, Any] | None = None,
        seed: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        base.__init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device=device,
            dtype=dtype,
        )
        self._init_feedback(make_rule(rule, options, seed), "", base)

    return __init__


class FeedbackConv1d(FeedbackConvNd, nn.Conv1d):
    """``nn.Conv1d`` with feedback: grad_input = conv_transpose1d(delta, B)."""

    __init__ = _conv_init(nn.Conv1d)


class FeedbackConv2d(FeedbackConvNd, nn.Conv2d):
    """``nn.Conv2d`` with feedback: grad_input = conv_transpose2d(delta, B)."""

    __init__ = _conv_init(nn.Conv2d)


class FeedbackConv3d(FeedbackConvNd, nn.Conv3d):
    """``nn.Conv3d`` with feedback: grad_input = conv_transpose3d(delta, B)."""

    __init__ = _conv_init(nn.Conv3d)


# torch layer type -> its feedback class. ``bc.apply(..., mapping=...)`` extends it; a subclass of a key whose
# forward is the key's own is converted too (see biocircuits.feedback.convert).
FEEDBACK_CLASSES: dict[type[nn.Module], type[FeedbackLayer]] = {
    nn.Linear: FeedbackLinear,
    nn.Conv1d: FeedbackConv1d,
    nn.Conv2d: FeedbackConv2d,
    nn.Conv3d: FeedbackConv3d,
}
