"""DANN's effective weight W = W_EE - W_EI W_IE as one autograd op: one fused product in forward, the two products
that the gradients need in backward, and no pass over a weight-sized tensor beyond them.

Shapes (a conv kernel flattened to its fan-in d = C_in * k_h * k_w): W_EE (n_e, d), W_EI (n_e, n_i), W_IE (n_i, d).

    forward    W = W_EE - W_EI W_IE                      one addmm (alpha = -1): n_e n_i d multiply-adds
    backward   dL/dW_EE = G                              (G = dL/dW, passed on as it is)
               dL/dW_EI = -G W_IE^T                      (n_e, n_i): n_e n_i d multiply-adds
               dL/dW_IE = -W_EI^T G = (-W_EI)^T G        (n_i, d): the sign goes on the small W_EI

Autograd through ``W_EE - W_EI @ W_IE`` computes the same numbers with two more weight-sized passes per layer and
step: the subtraction after the product (a separate tensor for W_EI W_IE) and the negation of G that the
subtraction's backward sends to the product. Under autocast the plain expression runs instead, so the product is
cast exactly as before (low-precision product, full-precision W).
"""

from __future__ import annotations

import torch
from torch import Tensor


class InhibitedWeight(torch.autograd.Function):
    """W = W_EE - W_EI W_IE on flattened weights: ``apply(w_ee, w_ei, w_ie)`` with w_ee (n_e, d), w_ei (n_e, n_i),
    w_ie (n_i, d); returns W (n_e, d)."""

    @staticmethod
    def forward(ctx, w_ee: Tensor, w_ei: Tensor, w_ie: Tensor) -> Tensor:
        ctx.save_for_backward(w_ei, w_ie)
        return torch.addmm(w_ee, w_ei, w_ie, alpha=-1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        w_ei, w_ie = ctx.saved_tensors
        need_ee, need_ei, need_ie = ctx.needs_input_grad
        grad_ei = torch.mm(grad, w_ie.t()).neg_() if need_ei else None  # -G W_IE^T, negated at (n_e, n_i)
        grad_ie = torch.mm(w_ei.t().neg(), grad) if need_ie else None  # (-W_EI)^T G
        return (grad if need_ee else None), grad_ei, grad_ie


def inhibited_weight(w_ee: Tensor, w_ei: Tensor, w_ie: Tensor) -> Tensor:
    """W = W_EE - W_EI W_IE shaped like ``w_ee`` (n_e, C, *k), from w_ei (n_e, n_i) and w_ie (n_i, C, *k): the fused
    [`InhibitedWeight`][biocircuits.dale.inhibited.InhibitedWeight] op, or under autocast the plain expression."""
    n_i = w_ie.shape[0]
    flat_ie = w_ie.reshape(n_i, -1)
    if torch.is_autocast_enabled(w_ee.device.type):
        return w_ee - (w_ei @ flat_ie).view_as(w_ee)
    return InhibitedWeight.apply(w_ee.reshape(w_ee.shape[0], -1), w_ei, flat_ie).view_as(w_ee)
