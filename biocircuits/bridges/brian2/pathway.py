"""One layer's feedback pathway driven by errors: held patterns
([`check_pathway`][biocircuits.bridges.brian2.pathway.check_pathway]), any stream
([`track`][biocircuits.bridges.brian2.pathway.track]) and sinusoids
([`frequency_response`][biocircuits.bridges.brian2.pathway.frequency_response]).

Poisson bound (spiking, held patterns): over an averaging window T_a the readout of target i has mean (B^T e)_i
and, from spike noise, E||noise||^2 = N = f sum_o ||B[o]||^2 (r+_o + r-_o) / (T_a (2k)^2), f the finite-window
factor of the synaptic filter (relays add theirs; `SpikingMode.window_noise`). With rho = N / ||B^T e||^2
the expected cosine between readout and B^T e is

    cos* = 1 / sqrt(1 + rho)                         (PatternResult.poisson_cosine)

and, since the noise lives in the span of the 2 n_out spike trains (a chi-square with about n_out degrees of
freedom, not one per target), a run falls below cos_lb = 1 / sqrt(1 + 3 rho) (PatternResult.poisson_bound)
only rarely (e.g. P < 0.002 for 9 degrees of freedom). Fidelity grows with T_a and r0.

Dale relays with ``noise`` rectify it (a rate cannot go below zero), so their readout has a mean shift b from
B^T e ([`relay_bias`][biocircuits.bridges.brian2.relays.relay_bias]) that no averaging removes. With mu = B^T e + b the
bound is cos* = (B^T e . mu) / (|B^T e| sqrt(|mu|^2 + N)) and cos_lb the same with 3 N
([`poisson_cosines`][biocircuits.bridges.brian2.pathway.poisson_cosines]); the bias's own cost is ``bias_cosine`` =
cos(mu, B^T e). The surplus is a Gamma-law approximation (the relay's input spikes are not Gaussian at r0 tau_r < 1),
good to about 20% of b, which the 3 N margin absorbs at 0.5 s windows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ._backend import angle, as_errors, as_matrix, check_units, feedback_matrix, seconds
from .metrics import FrequencyPoint, Tracking, fit_sine, tracking
from .modes import PathwayMode, Trace, make_mode
from .relays import Relays
from .streams import HZ, SECOND, ErrorStream, patterns, sine


@dataclass
class PatternResult:
    """One held error pattern: simulated vs analytic B^T e (cosine, angle in degrees, relative L2 error with the
    analytic scale, not a fitted one), the angle between B^T e and backprop's W^T e, (noisy modes) the
    Poisson-predicted cosine cos* and the bound cos_lb, and (noisy spiking relays) ``bias_cosine``, the cosine
    that the relays' rectification bias alone leaves, cos(B^T e + b, B^T e)."""

    cosine: float
    angle_deg: float
    rel_l2: float
    backprop_angle_deg: float | None = None
    poisson_cosine: float | None = None
    poisson_bound: float | None = None
    bias_cosine: float | None = None


@dataclass
class PathwayReport:
    mode: str
    dale: bool
    shape: tuple[int, int]
    duration_s: float
    patterns: list[PatternResult]
    simulated: list[list[float]]
    analytic: list[list[float]]
    sign_violations: int = 0
    neurons: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    settle_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def min_cosine(self) -> float:
        return min(p.cosine for p in self.patterns)

    @property
    def mean_cosine(self) -> float:
        return float(np.mean([p.cosine for p in self.patterns]))

    def summary(self) -> str:
        lines = [
            f"{self.mode} pathway{' (Dale)' if self.dale else ''}: B {self.shape[0]}x{self.shape[1]}, "
            f"{len(self.patterns)} patterns x {self.duration_s:g} s, {self.wall_s:.1f} s wall, "
            f"sign violations {self.sign_violations}"
        ]
        for i, p in enumerate(self.patterns):
            extra = f"  Poisson cos* {p.poisson_cosine:.4f}" if p.poisson_cosine is not None else ""
            extra += f" (relay bias alone: cos {p.bias_cosine:.4f})" if p.bias_cosine is not None else ""
            bp = f"  angle(B^T e, W^T e) {p.backprop_angle_deg:.1f} deg" if p.backprop_angle_deg is not None else ""
            lines.append(
                f"  pattern {i}: cos {p.cosine:.4f}  angle {p.angle_deg:.2f} deg  rel L2 {p.rel_l2:.3f}{extra}{bp}"
            )
        return "\n".join(lines)


BIAS_MARGIN = 1.5  # the bound's allowance for the surplus model (module docstring)


def poisson_cosines(target: np.ndarray, bias: np.ndarray, noise: float) -> tuple[float, float]:
    """(cos*, cos_lb) of the module docstring: c(b, N) = (a . mu) / (|a| sqrt(|mu|^2 + N)) with mu = a + b
    (a = ``target``, b = ``bias``, N = ``noise``); cos* = c(b, N), cos_lb = c(1.5 b, 3 N)."""

    def cosine(b: np.ndarray, n: float) -> float:
        mu = target + b
        return float(target @ mu) / math.sqrt(max(float(target @ target), 1e-300) * (float(mu @ mu) + n))

    return cosine(bias, noise), cosine(BIAS_MARGIN * bias, 3 * noise)


def relays_of(dale: bool | Relays) -> Relays | None:
    """``dale``: False (no relays), True (default [`Relays`][biocircuits.bridges.brian2.relays.Relays]) or a
    [`Relays`][biocircuits.bridges.brian2.relays.Relays]."""
    if isinstance(dale, Relays):
        return dale
    return Relays() if dale else None


def default_settle(mode: PathwayMode, relays: Relays | None) -> float:
    """Seconds skipped after each switch: ``settle_taus`` of the mode's time constant (8 tau rate, 5 tau_syn
    spiking), plus 5 tau_r with relays."""
    return mode.settle_taus * mode.tau_s + (5 * seconds(relays.tau) if relays else 0.0)


@check_units(duration=SECOND, settle=SECOND)
def check_pathway(
    layer_or_b: torch.nn.Module | torch.Tensor | np.ndarray,
    errors: torch.Tensor | np.ndarray,
    mode: str | PathwayMode = "spiking",
    *,
    dale: bool | Relays = False,
    weight: torch.Tensor | np.ndarray | None = None,
    duration: Any = None,
    settle: Any = None,
    seed: int = 0,
    codegen_target: str = "numpy",
) -> PathwayReport:
    """Hold each row of ``errors`` (shape (patterns, out)) for ``duration`` (default 0.2 s rate, 0.5 s
    spiking) and compare the readout averaged over each window after ``settle`` with B^T e."""
    m = make_mode(mode)
    relays = relays_of(dale)
    B, W = feedback_matrix(layer_or_b)
    if weight is not None:
        W = as_matrix(weight)
    E = as_errors(errors, B.shape[0])
    hold = seconds(duration if duration is not None else m.hold)
    settle_s = seconds(settle) if settle is not None else min(default_settle(m, relays), hold / 2)
    stream = patterns(E, hold=hold * SECOND, dt=m.dt)
    trace = m.simulate(B, stream, relays, seed=seed, codegen_target=codegen_target)
    n, skip = stream.hold, int(round(settle_s / m.dt_s))
    sim = np.stack([trace.values[p * n + skip : (p + 1) * n].mean(axis=0) for p in range(len(E))])
    analytic = E @ B
    window = (n - skip) * m.dt_s
    results = []
    for p in range(len(E)):
        cos, ang = angle(sim[p], analytic[p])
        rel = float(np.linalg.norm(sim[p] - analytic[p]) / max(np.linalg.norm(analytic[p]), 1e-300))
        bp = angle(analytic[p], E[p] @ W)[1] if W is not None else None
        noise = m.window_noise(B, E[p], window, relays)
        bias = m.bias(B, E[p], relays)
        bounds = poisson_cosines(analytic[p], bias, noise) if noise > 0 else (None, None)
        biased = angle(analytic[p] + bias, analytic[p])[0] if np.any(bias) else None
        results.append(PatternResult(cos, ang, rel, bp, *bounds, biased))
    return PathwayReport(
        m.name,
        relays is not None,
        tuple(B.shape),
        stream.hold * m.dt_s,
        results,
        sim.tolist(),
        analytic.tolist(),
        trace.sign_violations,
        trace.neurons,
        trace.wall_s,
        settle_s,
    )


@dataclass
class TrackingReport:
    """A stream through the pathway: the [`Trace`][biocircuits.bridges.brian2.modes.Trace] and its
    [`Tracking`][biocircuits.bridges.brian2.metrics.Tracking]."""

    stream: str
    trace: Trace
    tracking: Tracking

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "mode": self.trace.mode,
            "dale": self.trace.dale,
            "wall_s": self.trace.wall_s,
            "tracking": self.tracking.to_dict(),
        }

    def summary(self) -> str:
        t = self.trace
        return (
            f"{t.mode} pathway{' (Dale)' if t.dale else ''}, {self.stream} stream of {t.times[-1] + t.times[1]:g}"
            f" s, {t.wall_s:.1f} s wall: " + self.tracking.summary()
        )


@check_units(bin=SECOND, settle=SECOND)
def track(
    layer_or_b: torch.nn.Module | torch.Tensor | np.ndarray,
    stream: ErrorStream,
    mode: str | PathwayMode = "spiking",
    *,
    dale: bool | Relays = False,
    bin: Any = None,
    settle: Any = None,
    seed: int = 0,
    codegen_target: str = "numpy",
) -> TrackingReport:
    """Drive the pathway with ``stream`` and measure its tracking in bins of ``bin`` (default: the stream's hold,
    else 10 ms) from ``settle`` on (default 5 time constants)."""
    m = make_mode(mode)
    relays = relays_of(dale)
    B, _ = feedback_matrix(layer_or_b)
    as_errors(stream.values[:1], B.shape[0], "stream")
    trace = m.simulate(B, stream, relays, seed=seed, codegen_target=codegen_target)
    n = int(round(seconds(bin) / m.dt_s)) if bin is not None else stream.hold or int(round(0.01 / m.dt_s))
    start = int(round((seconds(settle) if settle is not None else 5 * m.tau_s) / m.dt_s))
    means = stream.values[start:][: (stream.steps - start) // n * n].reshape(-1, n, B.shape[0]).mean(axis=1)
    gains = trace.gain[start:][::n] if trace.gain is not None else [None] * len(means)
    noise = [m.window_noise(B, e, n * m.dt_s, relays, gain=g) for e, g in zip(means, gains, strict=False)]
    result = tracking(trace.values, trace.predicted, trace.target, m.dt_s, n, noise, start)
    return TrackingReport(stream.name, trace, result)


@check_units(frequencies=HZ, settle=SECOND)
def frequency_response(
    layer_or_b: torch.nn.Module | torch.Tensor | np.ndarray,
    direction: torch.Tensor | np.ndarray,
    frequencies: Any,
    mode: str | PathwayMode = "rate",
    *,
    dale: bool | Relays = False,
    cycles: int = 4,
    min_fit: float = 0.25,
    settle: Any = None,
    seed: int = 0,
    codegen_target: str = "numpy",
) -> list[FrequencyPoint]:
    """Gain and phase of the pathway at each of ``frequencies`` (Brian2 Hz): drive e(t) = d sin(2 pi f t)
    (d = ``direction``, shape (out,)), project the readout on b = B^T d (y . b / |b|^2) and fit a sinusoid over
    whole cycles (at least ``cycles`` and ``min_fit`` s) after ``settle`` (default 8 time constants)."""
    m = make_mode(mode)
    relays = relays_of(dale)
    B, _ = feedback_matrix(layer_or_b)
    d = as_errors(direction, B.shape[0], "direction")[:1]
    b = (d @ B)[0]
    u = b / float(b @ b)
    settle_s = seconds(settle) if settle is not None else 8 * max(m.tau_s, seconds(relays.tau) if relays else 0)
    points = []
    for f in np.atleast_1d(np.asarray(frequencies / HZ, dtype=float)):
        fit = math.ceil(max(cycles / f, min_fit) * f) / f
        stream = sine(d, frequency=f / SECOND, duration=(settle_s + fit) * SECOND, dt=m.dt)
        trace = m.simulate(B, stream, relays, seed=seed, codegen_target=codegen_target)
        keep = trace.times >= trace.times[-1] + m.dt_s - fit - 1e-12
        gain, phase = fit_sine(trace.times[keep], trace.values[keep] @ u, f)
        h = complex(m.transfer(np.array([f]), relays)[0])
        se = 0.0
        if trace.gain is not None:  # spike noise: the fit's standard error
            k = float(trace.gain[0])
            se = math.sqrt(2 * m.window_noise((B @ u)[:, None], np.zeros(B.shape[0]), fit, relays, gain=k)) * abs(h)
        points.append(FrequencyPoint(float(f), gain, phase, abs(h), math.degrees(math.atan2(h.imag, h.real)), se))
    return points
