"""Autograd ops whose backward sends the error through a feedback weight B instead of W.

For a layer y = W x + b with error delta = dL/dy the ops compute

    grad_input  = s B^T delta        (backprop would use W^T delta; s an optional scalar, default 1)
    grad_weight = delta x^T          (exactly as backprop)
    grad_bias   = sum over the batch of delta

and never read W in backward: only the input x and the feedback weight B are saved. With B = W the
result is identical to plain autograd. A *presynaptic* tensor p (shaped like x) may be given: then
grad_weight = delta p^T pairs the error with p instead of x (an eligibility trace of the input,
[`biocircuits.phases.transforms.trace`][biocircuits.phases.transforms.trace]); the forward and grad_input are unchanged.
A module-level *shadow* switch (used by probes) saves W as well and makes the backward use it, so the same graph can be
differentiated by exact backprop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class _Shadow:
    """Process-wide switches read by the ops; only probes change them."""

    save_weight: bool = False  # forward: also save W (so a shadow backprop backward is possible)
    use_weight: bool = False  # backward: send the error through W instead of B


@contextlib.contextmanager
def save_weight_for_shadow() -> Iterator[None]:
    """Forward passes inside this block also save W, so
    [`shadow_backprop`][biocircuits.feedback.functional.shadow_backprop] can be used later."""
    prev, _Shadow.save_weight = _Shadow.save_weight, True
    try:
        yield
    finally:
        _Shadow.save_weight = prev


@contextlib.contextmanager
def shadow_backprop() -> Iterator[None]:
    """Backward passes inside this block use W (exact backprop) on graphs built under
    [`save_weight_for_shadow`][biocircuits.feedback.functional.save_weight_for_shadow]."""
    prev, _Shadow.use_weight = _Shadow.use_weight, True
    try:
        yield
    finally:
        _Shadow.use_weight = prev


def _save(ctx, x: Tensor, weight: Tensor, feedback: Tensor | None, presyn: Tensor | None = None) -> None:
    """Save x (or the presynaptic tensor that replaces it in grad_weight) and B (None means B = W) for backward,
    and W too under [`save_weight_for_shadow`][biocircuits.feedback.functional.save_weight_for_shadow]."""
    feedback = weight if feedback is None else feedback
    ctx.x_shape = x.shape
    x = x if presyn is None else presyn.to(x.dtype)
    ctx.saved_weight = _Shadow.save_weight
    if ctx.saved_weight:
        ctx.save_for_backward(x, feedback, weight)
    else:
        ctx.save_for_backward(x, feedback)


def _direct(ctx) -> Callable[[Tensor, torch.Size], Tensor] | None:
    """The direct pathway (DFA) of this op, unless a shadow backprop pass asks for W."""
    if _Shadow.use_weight and ctx.saved_weight:
        return None
    return ctx.direct


def _pick_feedback(ctx, saved: Sequence[Tensor]) -> tuple[Tensor, float | Tensor | None]:
    """(the matrix the error goes back through, the scalar to multiply grad_input by): (W, None) in a shadow
    backprop pass, else (B, s)."""
    if _Shadow.use_weight and ctx.saved_weight:
        return saved[2], None
    return saved[1], ctx.scale


def _scaled(grad: Tensor, scale: float | Tensor | None) -> Tensor:
    return grad if scale is None else grad.mul_(scale)


class FeedbackLinearFunction(torch.autograd.Function):
    """y = x W^T + b; backward: grad_x = s delta B, grad_W = delta^T x, grad_b = sum(delta).

    Shapes: x (..., in), W and B (out, in), b (out,), y and delta (..., out); s a Python float, a 0-d tensor or
    None (1).
    """

    # forward(ctx, ...) rather than setup_context: Function.apply then skips an inspect.signature() per call

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        feedback: Tensor | None,
        scale: float | Tensor | None = None,
        direct: Callable | None = None,
        presyn: Tensor | None = None,
    ) -> Tensor:
        _save(ctx, x, weight, feedback, presyn)
        ctx.scale, ctx.direct = scale, direct
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        saved = ctx.saved_tensors
        x = saved[0]
        grad_x = grad_w = grad_b = None
        direct = _direct(ctx)
        if direct is not None:  # before the weight gradient: the output layer records the output error here
            grad_x = direct(grad_out, ctx.x_shape) if ctx.needs_input_grad[0] else None
        elif ctx.needs_input_grad[0]:
            feedback, scale = _pick_feedback(ctx, saved)
            grad_x = _scaled(grad_out.matmul(feedback.to(grad_out.dtype)), scale)
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            delta = grad_out.reshape(-1, grad_out.shape[-1])
            if ctx.needs_input_grad[1]:
                grad_w = delta.t().matmul(x.reshape(-1, x.shape[-1]))
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = delta.sum(0)
        return grad_x, grad_w, grad_b, None, None, None, None


class FeedbackConvFunction(torch.autograd.Function):
    """N-d convolution y = conv(x, W) + b; backward: grad_x = s conv_transpose(delta, B), grad_W and grad_b as
    backprop, all from one ``aten.convolution_backward`` call (B passed where autograd passes W).

    Shapes: x (N, C_in, *spatial), W and B (C_out, C_in / groups, *kernel), delta (N, C_out, *spatial_out).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, feedback, scale, direct, stride, padding, dilation, groups, presyn=None):
        _save(ctx, x, weight, feedback, presyn)
        ctx.scale, ctx.direct = scale, direct
        ctx.conv_args = (stride, padding, dilation, groups)
        ctx.bias_sizes = None if bias is None else [bias.shape[0]]
        n = weight.dim() - 2
        return torch.convolution(x, weight, bias, stride, padding, dilation, False, [0] * n, groups)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        saved = ctx.saved_tensors
        x = saved[0]
        feedback, scale = _pick_feedback(ctx, saved)
        stride, padding, dilation, groups = ctx.conv_args
        needs = ctx.needs_input_grad
        direct = _direct(ctx)
        mask = [needs[0] and direct is None, needs[1], ctx.bias_sizes is not None and needs[2]]
        n = feedback.dim() - 2
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            x,
            feedback.to(grad_out.dtype),
            ctx.bias_sizes,
            stride,
            padding,
            dilation,
            False,
            [0] * n,
            groups,
            mask,
        )
        if direct is not None:
            grad_x = direct(grad_out, ctx.x_shape) if needs[0] else None
        elif grad_x is not None:
            grad_x = _scaled(grad_x, scale)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None, None, None


def feedback_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    feedback: Tensor | None,
    scale: float | Tensor | None = None,
    direct: Callable | None = None,
    presyn: Tensor | None = None,
) -> Tensor:
    """``F.linear`` whose backward uses ``scale * feedback`` (shaped like ``weight``; None means W itself, and
    no scale) for the input gradient, or ``direct(delta, x.shape)`` when given (direct feedback alignment);
    grad_W = delta^T presyn when ``presyn`` (shaped like x) is given, else delta^T x."""
    return FeedbackLinearFunction.apply(x, weight, bias, feedback, scale, direct, presyn)


def feedback_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    feedback: Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    scale: float | Tensor | None = None,
    direct: Callable | None = None,
    presyn: Tensor | None = None,
) -> Tensor:
    """A zero-padded N-d convolution whose backward uses ``scale * feedback`` (None: W) for the input gradient
    (and ``presyn``, shaped like x, in place of x for the weight gradient when given).

    ``padding`` is a tuple of ints; string paddings and padding modes are resolved by the caller
    (see [`biocircuits.feedback.layers.FeedbackConvNd._pad`][biocircuits.feedback.layers.FeedbackConvNd._pad])."""
    return FeedbackConvFunction.apply(
        x, weight, bias, feedback, scale, direct, list(stride), list(padding), list(dilation), groups, presyn
    )
