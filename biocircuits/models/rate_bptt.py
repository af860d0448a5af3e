"""Backprop through time of the rate RNN's recursion as one autograd op per sequence, with the error sent back through
the recurrent matrix's feedback weight B (B = W for backprop): the forward loop runs without a graph, the backward is
the explicit recursion below, and the recurrent weight gradient is one matmul over all steps.

For x_0 = 0, r_t = phi(x_t) and t = 0 .. T-1 (the forward of
[`RateRNN`][biocircuits.models.recurrent.RateRNN], with the input drive p_t = W_in u_t computed before, for all t):

    x_{t+1} = (1 - a) x_t + a (W r_t + b + p_t) + c xi_t,      outputs r_1 .. r_T

Backward, from g_t = dL/dr_t (t = 1 .. T; what the readout sends back) and s B (s a scalar, default 1), errors as
row vectors [B, N] (so e B is backprop's W^T e with B in place of W):

    e_T = phi'(x_T) g_T
    e_t = phi'(x_t) (g_t + s (a e_{t+1}) B) + (1 - a) e_{t+1}           (e_t = dL/dx_t, t = T-1 .. 1)
    d_t = a e_{t+1}                                                       (dL/d drive_t, t = 0 .. T-1)
    dL/dp_t = d_t,   grad_W = sum_t d_t^T r_t,   grad_b = sum_t sum_batch d_t

With B = W this is the gradient autograd computes for the same loop (up to the order of the sums).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def _softplus_derivative(x: Tensor) -> Tensor:
    """d softplus / dx = sigmoid(x), and 1 above torch's threshold 20 (where softplus(x) = x)."""
    return torch.where(x > 20, torch.ones_like(x), torch.sigmoid(x))


# phi'(x) from what the forward keeps: ("rate", f(r)) with r = phi(x), or ("state", f(x)); as autograd's backward
# formulas compute them (relu: r > 0, tanh: 1 - r^2, sigmoid: r (1 - r))
DERIVATIVES: dict[str, tuple[str, Callable[[Tensor], Tensor]]] = {
    "relu": ("rate", lambda r: (r > 0).to(r.dtype)),
    "tanh": ("rate", lambda r: 1.0 - r * r),
    "sigmoid": ("rate", lambda r: r * (1.0 - r)),
    "softplus": ("state", _softplus_derivative),
    "identity": ("rate", torch.ones_like),
}


class RateRecurrence(torch.autograd.Function):
    """rates r_1 .. r_T [B, T, N] from the input drive p [B, T, N], W and b of the recurrent matrix [N, N], [N]; the
    backward uses ``feedback`` (B, [N, N]; None: W) times ``scale`` (a float, a 0-d tensor or None: 1) for the error
    through the recurrence (module docstring)."""

    @staticmethod
    def forward(ctx, drive_in, weight, bias, feedback, scale, alpha, phi, activation, noise_coef):
        batch, steps, n = drive_in.shape
        x = drive_in.new_zeros(batch, n)
        r = phi(x)
        out = drive_in.new_empty(batch, steps, n)  # r_1 .. r_T, written in place (no list to stack)
        kept = drive_in.new_empty(batch, steps, n) if DERIVATIVES[activation][0] == "state" else out
        for t, p_t in enumerate(drive_in.unbind(1)):
            x = (1.0 - alpha) * x + alpha * (F.linear(r, weight, bias) + p_t)
            if noise_coef:
                x = x + noise_coef * torch.randn_like(x)
            r = phi(x)
            out[:, t] = r
            if kept is not out:
                kept[:, t] = x
        ctx.save_for_backward(out, kept, weight if feedback is None else feedback)
        ctx.alpha, ctx.scale, ctx.phi, ctx.activation, ctx.has_bias = alpha, scale, phi, activation, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_rates: Tensor):
        rates, kept, feedback = ctx.saved_tensors
        a = ctx.alpha
        d = _drive_errors(grad_rates, DERIVATIVES[ctx.activation][1](kept), feedback, ctx.scale, a)
        flat = d.reshape(-1, d.shape[-1])
        grad_w = grad_b = None
        if ctx.needs_input_grad[1]:  # grad_W = sum_t d_t^T r_t, r_0 = phi(0): one matmul over every step
            r0 = ctx.phi(rates.new_zeros(1, 1, rates.shape[2])).expand(rates.shape[0], 1, -1)
            presyn = torch.cat([r0, rates[:, :-1]], 1).reshape(-1, rates.shape[2])
            grad_w = flat.t().mm(presyn)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat.sum(0)
        grad_in = d if ctx.needs_input_grad[0] else None
        return grad_in, grad_w, grad_b, None, None, None, None, None, None


def _drive_errors(grad_rates: Tensor, slope: Tensor, feedback: Tensor, scale, a: float) -> Tensor:
    """d_t = dL/d drive_t [B, T, N] from g = dL/dr [B, T, N] and phi'(x) [B, T, N] (module docstring's recursion),
    computed in place in one [B, T, N] tensor: e_t = phi'(x_t) g_t first, then the recursion from t = T backwards."""
    back = feedback.to(grad_rates.dtype) * a  # e_{t+1} -> s (a e_{t+1}) B
    if scale is not None:
        back = back * scale
    e = grad_rates * slope
    for t in range(e.shape[1] - 2, -1, -1):
        later = e[:, t + 1]
        e[:, t].addcmul_(slope[:, t], later.mm(back)).add_(later, alpha=1.0 - a)
    return e.mul_(a)


def rate_recurrence(
    drive_in: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    feedback: Tensor | None,
    scale: float | Tensor | None,
    alpha: float,
    activation: str,
    phi: Callable[[Tensor], Tensor],
    noise_std: float = 0.0,
) -> Tensor:
    """Rates [B, T, N] of the rate RNN from the input drive W_in u_t [B, T, N] (``noise_std`` > 0: private noise drawn
    per step, as the step-by-step forward draws it), with backprop through time through s B (module docstring)."""
    noise_coef = math.sqrt(2.0 * alpha) * noise_std
    return RateRecurrence.apply(drive_in, weight, bias, feedback, scale, alpha, phi, activation, noise_coef)
