"""Eligibility traces: one per synapse, run forward in time with the network (no backprop through time). Each trace
class holds the recursion of one online rule for one kind of unit and gives, at every step t, the eligibility
e_t [B, n_post, n_pre] of each synapse (b is the sample: traces are per trial, the batch sums at the update).

Notation (the network's own, see [`biocircuits.recurrent.cells`][biocircuits.recurrent.cells]): a unit's state s_t
(membrane potential or rate state) follows s_t = lam s_{t-1} + g (W pre_t + ...), with leak ``lam`` and gain ``g``;
``pre_t`` [B, n_pre] is the presynaptic activity that W meets at step t (input u_t, or the recurrent units' output of
step t-1, with a column of ones for a bias); ``d_t`` [B, n_post] is the derivative of each unit's output at step t with
respect to its state (phi'(x_t) for a rate unit, the pseudo-derivative psi_t for a spiking unit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class Dynamics:
    """What a trace needs of the units: leak ``lam`` and gain ``g`` of s_t = lam s_{t-1} + g W pre_t, and for
    ALIF units the threshold adaptation (``beta``, ``rho``: A_t = v_th + beta a_t, a_t = rho a_{t-1} + z_{t-1})."""

    lam: float
    g: float
    beta: float = 0.0
    rho: float = 0.0


class Factored(NamedTuple):
    """A trace that factorises, e_t[b, j, i] = d[b, j] eps[b, i], kept as its two factors."""

    d: Tensor
    eps: Tensor

    def full(self) -> Tensor:
        return self.d[:, :, None] * self.eps[:, None, :]


class PostMajor(NamedTuple):
    """A trace kept as p[j, b, i], [n_post, B, n_pre] (RFLO's layout: its update is one batched matmul over j)."""

    p: Tensor

    def full(self) -> Tensor:
        return self.p.transpose(0, 1)


Eligibility = Tensor | Factored | PostMajor


def contract(signal: Tensor, e: Eligibility) -> Tensor:
    """The update of one step, sum_b L_t[b, j] e_t[b, j, i] -> [n_post, n_pre], for ``signal`` L_t [B, n_post]
    (with a factored trace: (L_t * d_t)^T eps_t, without building the [B, n_post, n_pre] tensor)."""
    if isinstance(e, Factored):
        return (signal * e.d).T @ e.eps
    if isinstance(e, PostMajor):  # [n_post, 1, B] @ [n_post, B, n_pre]
        return torch.bmm(signal.T[:, None, :], e.p)[:, 0]
    return torch.einsum("bj,bji->ji", signal, e)


class EligibilityTrace:
    """Base class: ``advance(pre_t, d_t)`` updates the trace and returns e_t [B, n_post, n_pre] (or its factors)."""

    def __init__(self, dyn: Dynamics, batch: int, n_post: int, n_pre: int, like: Tensor) -> None:
        self.dyn = dyn
        self.shape = (batch, n_post, n_pre)
        self.like = like

    def advance(self, pre: Tensor, d: Tensor) -> Eligibility:
        raise NotImplementedError


class PresynapticTrace(EligibilityTrace):
    """e-prop (Bellec et al. 2020) for LIF and leaky rate units: the eligibility vector is the low-pass filtered
    presynaptic activity, the trace its product with the postsynaptic derivative:

        eps_t[b, i] = lam eps_{t-1}[b, i] + g pre_t[b, i]               (= ds_t / dW_ji without recurrence)
        e_t[b, j, i] = d_t[b, j] eps_t[b, i]

    The per-synapse trace factorises, so only eps [B, n_pre] is kept between steps."""

    def __init__(self, dyn: Dynamics, batch: int, n_post: int, n_pre: int, like: Tensor) -> None:
        super().__init__(dyn, batch, n_post, n_pre, like)
        self.eps = like.new_zeros(batch, n_pre)

    def advance(self, pre: Tensor, d: Tensor) -> Eligibility:
        self.eps = self.dyn.lam * self.eps + self.dyn.g * pre
        return Factored(d, self.eps)


class AdaptiveTrace(PresynapticTrace):
    """e-prop for ALIF units (Bellec et al. 2020, eqs. 25-27): besides the potential's eligibility vector eps^v
    ([`PresynapticTrace`][biocircuits.recurrent.traces.PresynapticTrace], lam = alpha, g = 1) each synapse keeps the
    threshold's, eps^a = da_t / dW_ji:

        eps^a_t[b, j, i] = psi_{t-1}[b, j] eps^v_{t-1}[b, i] + (rho - psi_{t-1}[b, j] beta) eps^a_{t-1}[b, j, i]
        e_t[b, j, i]     = psi_t[b, j] (eps^v_t[b, i] - beta eps^a_t[b, j, i])"""

    def __init__(self, dyn: Dynamics, batch: int, n_post: int, n_pre: int, like: Tensor) -> None:
        super().__init__(dyn, batch, n_post, n_pre, like)
        self.eps_a = like.new_zeros(batch, n_post, n_pre)
        self.psi_prev = like.new_zeros(batch, n_post)

    def advance(self, pre: Tensor, d: Tensor) -> Tensor:
        beta, rho, psi = self.dyn.beta, self.dyn.rho, self.psi_prev[:, :, None]
        self.eps_a = psi * self.eps[:, None, :] + (rho - psi * beta) * self.eps_a
        self.eps = self.dyn.lam * self.eps + self.dyn.g * pre
        self.psi_prev = d
        return d[:, :, None] * (self.eps[:, None, :] - beta * self.eps_a)


class RFLOTrace(EligibilityTrace):
    """RFLO (Murray 2019, eq. 12): the postsynaptic derivative enters the leaky recursion, one value per synapse:

        p_t[b, j, i] = lam p_{t-1}[b, j, i] + g d_t[b, j] pre_t[b, i],        e_t = p_t

    (In Murray's parametrisation, tau dh/dt = -h + phi(u), this is the exact single-step derivative dh_t/dW; on a
    rate state x with r = phi(x) it pairs each past input with the present phi'.)"""

    def __init__(self, dyn: Dynamics, batch: int, n_post: int, n_pre: int, like: Tensor) -> None:
        super().__init__(dyn, batch, n_post, n_pre, like)
        self.p = like.new_zeros(n_post, batch, n_pre)  # post-major (PostMajor)

    def advance(self, pre: Tensor, d: Tensor) -> Eligibility:
        self.p.mul_(self.dyn.lam).addcmul_(d.T[:, :, None], pre[None, :, :], value=self.dyn.g)  # in place
        return PostMajor(self.p)


class ReadoutFilter:
    """The readout's low-pass filter applied to a trace (Bellec et al. 2020, eq. 28): with a leaky readout
    out_t = kappa out_{t-1} + W_out y_t, an error at step t reaches every earlier step's activity, and
    sum_t dE/dy_t e_t = sum_t L_t F_kappa(e)_t with F_kappa(e)_t = kappa F_kappa(e)_{t-1} + e_t."""

    def __init__(self, kappa: float) -> None:
        self.kappa, self.value = kappa, None

    def __call__(self, e: Eligibility) -> Eligibility:
        if self.kappa == 0.0:  # no filter: the trace itself (factored or not)
            return e
        e = e.full() if isinstance(e, Factored) else e
        self.value = e.clone() if self.value is None else self.kappa * self.value + e  # (a trace may change in place)
        return self.value


def ones_column(x: Tensor) -> Tensor:
    """[B, n] -> [B, n + 1]: x with a column of ones (the presynaptic activity of a bias)."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
