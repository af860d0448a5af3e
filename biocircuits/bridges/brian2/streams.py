"""Error streams e(t) that drive a simulated feedback pathway, registered by name
([`WAVEFORMS`][biocircuits.bridges.brian2.streams.WAVEFORMS]), and the recorder that captures a real layer's errors
during a training run.

A stream holds e at the midpoints t_n + dt/2 of the simulation's time steps (shape (steps, n_out), error units):
every stage of the pathway holds its input for one step, so midpoint samples make the discrete pathway follow the
continuous-time one to second order in dt (a held sample would add a dt/2 lag).

Waveforms (each ``f(errors, *, dt, ...)``, ``errors`` of shape (patterns, n_out) from the layer):

- ``patterns``: row p held during window p (``hold`` each), read out per window (the constant-error check);
- ``recorded``: a recorded sequence of a layer's errors, one row per training step, each held ``hold``;
- ``step``: e(t) = errors[0] for t >= ``onset``, 0 before;
- ``sine``: e(t) = ``amplitude`` errors[0] sin(2 pi f t);
- ``ou``: independent Ornstein-Uhlenbeck processes per unit with correlation time ``tau_corr``
  (<e_o(t) e_o(t + s)> = s_o^2 exp(-|s| / tau_corr)), s_o the std of errors[:, o] (its RMS for one pattern).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from biocircuits.core.registry import Registry

from ._backend import b2, check_units, seconds

WAVEFORMS: Registry = Registry("error waveform")

MS = b2.ms if b2 is not None else 1e-3
SECOND = b2.second if b2 is not None else 1.0
HZ = b2.Hz if b2 is not None else 1.0


@dataclass
class ErrorStream:
    """e(t) on the grid t_n = n dt (``values`` (steps, n_out), sampled at t_n + dt/2), with its provenance:
    ``hold`` (steps per window) and ``windows`` (patterns) for windowed streams, ``frequency`` (Hz) for sines,
    ``onset`` (s) for steps; ``gain_per_window``: spiking gain control per window (held patterns, each read
    after settling) rather than over the whole stream."""

    name: str
    values: np.ndarray
    dt: float
    hold: int | None = None
    frequency: float | None = None
    onset: float | None = None
    gain_per_window: bool = False

    @property
    def steps(self) -> int:
        return len(self.values)

    @property
    def duration(self) -> float:
        return self.steps * self.dt

    @property
    def times(self) -> np.ndarray:
        """t_n = n dt, the times at which the pathway's state is read (s)."""
        return np.arange(self.steps) * self.dt

    @property
    def windows(self) -> int:
        return self.steps // self.hold if self.hold else 1


def _steps(duration: float, dt: float) -> int:
    return max(1, int(round(duration / dt)))


def _held(name: str, errors: np.ndarray, hold: Any, dt: Any) -> ErrorStream:
    d, h = seconds(dt), seconds(hold)
    n = _steps(h, d)
    return ErrorStream(name, np.repeat(np.atleast_2d(errors), n, axis=0), d, hold=n, gain_per_window=name == "patterns")


@WAVEFORMS.register("patterns")
@check_units(hold=SECOND, dt=SECOND)
def patterns(errors: np.ndarray, *, hold: Any = 200 * MS, dt: Any = 0.1 * MS) -> ErrorStream:
    """Row p of ``errors`` during [p hold, (p + 1) hold)."""
    return _held("patterns", errors, hold, dt)


@WAVEFORMS.register("recorded")
@check_units(hold=SECOND, dt=SECOND)
def recorded(errors: np.ndarray, *, hold: Any = 20 * MS, dt: Any = 0.1 * MS) -> ErrorStream:
    """A recorded error sequence (one row per training step, see
    [`ErrorRecorder`][biocircuits.bridges.brian2.streams.ErrorRecorder]), each held ``hold``."""
    return _held("recorded", errors, hold, dt)


@WAVEFORMS.register("step")
@check_units(onset=SECOND, duration=SECOND, dt=SECOND)
def step(errors: np.ndarray, *, onset: Any = 20 * MS, duration: Any = 200 * MS, dt: Any = 0.1 * MS) -> ErrorStream:
    """0 before ``onset`` (rounded to the grid), errors[0] from then on."""
    d = seconds(dt)
    n, n0 = _steps(seconds(duration), d), _steps(seconds(onset), d)
    values = np.zeros((n, errors.shape[1]))
    values[n0:] = errors[0]
    return ErrorStream("step", values, d, onset=n0 * d)


@WAVEFORMS.register("sine")
@check_units(frequency=HZ, duration=SECOND, dt=SECOND)
def sine(
    errors: np.ndarray, *, frequency: Any = 10 * HZ, duration: Any = None, amplitude: float = 1.0, dt: Any = 0.1 * MS
) -> ErrorStream:
    """amplitude errors[0] sin(2 pi f t); ``duration`` defaults to max(0.25 s, 4 cycles) plus 0.1 s to settle."""
    d, f = seconds(dt), float(frequency / HZ)
    length = seconds(duration) if duration is not None else max(0.25, 4 / f) + 0.1
    t = (np.arange(_steps(length, d)) + 0.5) * d
    values = amplitude * np.sin(2 * math.pi * f * t)[:, None] * errors[0][None, :]
    return ErrorStream("sine", values, d, frequency=f)


@WAVEFORMS.register("ou")
@check_units(tau_corr=SECOND, duration=SECOND, dt=SECOND)
def ou(
    errors: np.ndarray, *, tau_corr: Any = 20 * MS, duration: Any = 1 * SECOND, seed: int = 0, dt: Any = 0.1 * MS
) -> ErrorStream:
    """Stationary OU processes, exact on the grid: x_{n+1} = c x_n + s sqrt(1 - c^2) xi_n, c = exp(-dt/tau_corr)."""
    d = seconds(dt)
    n = _steps(seconds(duration), d)
    scale = errors.std(axis=0) if len(errors) > 1 else np.full(errors.shape[1], np.sqrt(np.mean(errors**2)))
    rng = np.random.default_rng(seed)
    c = math.exp(-d / seconds(tau_corr))
    xi = rng.standard_normal((n, errors.shape[1]))
    x = np.empty_like(xi)
    x[0] = xi[0]
    for i in range(1, n):
        x[i] = c * x[i - 1] + math.sqrt(1 - c * c) * xi[i]
    return ErrorStream("ou", x * scale, d)


class ErrorRecorder:
    """Records the error dL/dy arriving at ``layer``'s output at every backward of a training run (the signal its
    feedback pathway carries): ``with ErrorRecorder(layer) as rec: ...train...``; ``rec.stream()`` is a
    (steps, out) tensor, one row per backward (``sample`` picks one sample of each batch; None averages over the
    batch). Conv errors are taken at the centre output location."""

    def __init__(self, layer: nn.Module, sample: int | None = 0) -> None:
        self.layer, self.sample = layer, sample
        self.rows: list[Tensor] = []
        self._handle = None

    def _forward(self, module: nn.Module, args: tuple, out: Tensor) -> None:
        if out.requires_grad:
            out.register_hook(self._record)

    def _record(self, grad: Tensor) -> None:
        g = grad.detach()
        if g.dim() > 2:
            g = g[(slice(None), slice(None), *(s // 2 for s in g.shape[2:]))]
        self.rows.append((g.mean(0) if self.sample is None else g[self.sample]).double().cpu())

    def __enter__(self) -> ErrorRecorder:
        self._handle = self.layer.register_forward_hook(self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()

    def stream(self) -> Tensor:
        return torch.stack(self.rows) if self.rows else torch.empty(0)
