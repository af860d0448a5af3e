"""Dale's inhibitory relay interneurons ([`Relays`][biocircuits.bridges.brian2.relays.Relays]) and what their noise
costs a spiking pathway: the relay's rate is rectified at zero, so its noise adds a fixed surplus of inhibition (a
bias), not only variance.

A spiking relay's rate obeys rho_{n+1} = c rho_n + J N_n + noise on the dt grid (N_n its input spikes, Poisson at
r; noise-free: c = exp(-a), J = (e^a - 1) / dt, exact; with noise the Euler step c = 1 - a, J = a / ((1 - a) dt),
a = dt / tau_r, so that E[rho] = r either way) and it fires with probability max(rho, 0) dt. Write rho = S + Z:

- S, the filtered input spikes: mean r, variance v = c^2 J^2 r dt (1 - r dt) / (1 - c^2), S >= 0; taken as a
  Gamma law of those moments (shape r^2 / v, scale v / r; a point mass at 0 for r = 0);
- Z, the relay's own noise (Euler-discretised OU): mean 0, std s = noise r0 / sqrt(1 - a / 2).

The relay fires at E[max(rho, 0)] = r + delta(r), delta(r) = E[(S + Z)^-] = E_S[g(S)],
g(x) = s phi(x / s) - x Phi(-x / s) (the Gaussian's negative part), i.e.
delta(r) = s / sqrt(2 pi) - int_0^inf Phi(-x / s) P(S > x) dx
([`rectification_surplus`][biocircuits.bridges.brian2.relays.rectification_surplus]); delta(0) = s / sqrt(2 pi) = 0.4 s.
With k the error gain (Hz per error unit), the relays of "+" (input r0 + k e) project -B- and those of "-" (input r0 - k
e) -B+, so the readout, in units of B^T e, is shifted by b = -(B-^T delta(r+) + B+^T delta(r-)) / (2 k)
([`relay_bias`][biocircuits.bridges.brian2.relays.relay_bias]): always negative, it leans on every target by its total
|B| and does not shrink with the averaging window. The rate-mode relays are linear (x may go negative): no bias there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._backend import check_units, seconds
from .streams import MS, SECOND


class Relays:
    """Dale's inhibitory relay interneurons: time constant ``tau`` and ``noise`` (stationary std of the relay's
    activity relative to its baseline, dimensionless)."""

    @check_units(tau=SECOND)
    def __init__(self, tau: Any = 2 * MS, noise: float = 0.0) -> None:
        self.tau, self.noise = tau, float(noise)
        if self.noise < 0:
            raise ValueError(f"relay noise must be >= 0, given {noise}")

    def __repr__(self) -> str:
        return f"Relays(tau={self.tau}, noise={self.noise:g})"

    @property
    def method(self) -> str:
        """Brian2's integration method: exact without noise, Euler (the only one for xi) with it."""
        return "euler" if self.noise else "exact"

    def decay_and_jump(self, dt: float) -> tuple[float, float]:
        """(c, J dt) of a spiking relay on the grid of ``dt`` s (module docstring): E[rho] = J dt c r / (1 - c) = r."""
        a = dt / seconds(self.tau)
        return (1 - a, a / (1 - a)) if self.noise else (math.exp(-a), math.expm1(a))


def _gaussian_negative_part(x: torch.Tensor, s: float) -> torch.Tensor:
    """Phi(-x / s), the probability that N(x, s^2) is negative."""
    return 0.5 * torch.erfc(x / (s * math.sqrt(2)))


def rectification_surplus(rates: np.ndarray, relays: Relays, r0: float, dt: float, points: int = 4001) -> np.ndarray:
    """delta(r) (Hz) of the module docstring for each input rate in ``rates`` (Hz): the surplus firing of a noisy
    relay over its input rate. Integrated on a grid of ``points`` over [0, 10 s] (trapezoid)."""
    r = np.asarray(rates, dtype=float)
    if relays.noise == 0:
        return np.zeros_like(r)
    a = dt / seconds(relays.tau)
    c, jump_dt = relays.decay_and_jump(dt)
    s = relays.noise * r0 / math.sqrt(1 - a / 2)
    x = torch.linspace(0, 10 * s, points, dtype=torch.float64)
    tail = _gaussian_negative_part(x, s)
    out = np.full(r.shape, s / math.sqrt(2 * math.pi))
    for i, rate in enumerate(r.ravel()):
        if rate <= 0:
            continue
        var = c**2 * (jump_dt / dt) ** 2 * rate * dt * max(1 - rate * dt, 0.0) / (1 - c**2)
        shape, scale = rate**2 / var, var / rate
        survival = torch.special.gammaincc(torch.tensor(shape, dtype=torch.float64), x / scale)
        out.flat[i] -= float(torch.trapezoid(tail * survival, x))
    return out


def relay_bias(
    B: np.ndarray, e: np.ndarray, relays: Relays, r0: float, dt: float, gain: float | None = None
) -> np.ndarray:
    """b = -(B-^T delta(r0 + k e) + B+^T delta(r0 - k e)) / (2 k), shape (n_in,): the mean shift of the spiking
    Dale readout (units of B^T e) from the relays' rectified noise; k = ``gain`` (default r0 / max|e|)."""
    k = gain if gain is not None else r0 / max(float(np.abs(e).max()), 1e-300)
    rates = np.clip(np.concatenate([r0 + k * e, r0 - k * e]), 0, None)
    surplus = rectification_surplus(rates, relays, r0, dt)
    n = len(e)
    return -(surplus[:n] @ np.maximum(-B, 0) + surplus[n:] @ np.maximum(B, 0)) / (2 * k)
