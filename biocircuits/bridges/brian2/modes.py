"""Pathway modes (registered in [`MODES`][biocircuits.bridges.brian2.modes.MODES]) and Dale relays, as classes with
units, Brian2 style.

A mode turns B (shape (n_out, n_in)) and an error stream e(t)
([`ErrorStream`][biocircuits.bridges.brian2.streams.ErrorStream]) into a network that delivers the feedback signal s(t)
= B^T e(t) to n_in target units, and reads it in units of B^T e (normalised):

- [`RateMode`][biocircuits.bridges.brian2.modes.RateMode] (``tau``): leaky integrators, tau dr/dt = -r + sum_o B[o, i]
  e_o(t).
- [`SpikingMode`][biocircuits.bridges.brian2.modes.SpikingMode] (``tau_syn``, ``rate`` r0): each error unit is a
  push-pull pair of Poisson neurons at r0 +- k e_o(t) (k = r0 / max|e|, per window for held patterns, else over the
  stream: gain control); current synapses tau_s dI/dt = -I, a spike adds +-B[o, i]; the readout is I / (2 k dt / (1 -
  exp(-dt/tau_s))) (the exact discrete mean of 2 k tau_s B^T e).

Both are, on the dt grid, the first-order low-pass y_{n+1} = a y_n + (1 - a) s_n (a = exp(-dt/tau)), i.e. the
continuous H(f) = 1 / (1 + 2 pi i f tau)
([`PathwayMode.transfer`][biocircuits.bridges.brian2.modes.PathwayMode.transfer];
[`PathwayMode.predict`][biocircuits.bridges.brian2.modes.PathwayMode.predict] is the discrete one, exact for rate and
the mean for spiking).

[`Relays`][biocircuits.bridges.brian2.relays.Relays] (Dale's law): B = B+ - B- (B+- >= 0). Error units are excitatory
pairs u+- = base +- e (rate; base = max|e|) or r0 +- k e (spiking); "+" projects B+ and "-" projects B- to the targets,
and each drives its own inhibitory relay interneuron (one-to-one), which projects -B- (relay of "+") and -B+ (relay of
"-"). A relay is a first-order unit of time constant tau_r with optional noise: rate, tau_r dx/dt = -x + u + noise base
sqrt(2 tau_r) xi; spiking, a Poisson neuron whose rate rho obeys tau_r drho/dt = -rho + noise r0 sqrt(2 tau_r) xi and
jumps by (exp(dt/tau_r) - 1)/dt per input spike (one relay spike per input spike on average). The targets receive
B+ (u+ - x-) + B- (u- - x+) = B^T (e + L_r e) (+ noise): Dale's pathway is H(f) (1 + H_r(f) e^{-i pi f dt}) / 2
(the relay's output is held for one step: a dt/2 lag); its cost is an extra lag/attenuation and the relays' own
noise (Poisson and ``noise``), measured, not assumed. A spiking relay's rate is rectified at zero, so its
``noise`` also adds a fixed surplus of inhibition, a bias the bound includes
([`relays`][biocircuits.bridges.brian2.relays]).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from biocircuits.core.registry import Registry

from ._backend import check_units, hertz, lowpass, require_brian2, seconds, session
from .relays import Relays, relay_bias
from .streams import HZ, MS, SECOND, ErrorStream
from .wiring import connect, rate_relays, spiking_relays, split, table, window_gain

__all__ = [
    "MODES",
    "PathwayMode",
    "RateMode",
    "Relays",
    "SpikingMode",
    "Trace",
    "connect",
    "make_mode",
    "split",
    "table",
    "window_gain",
]

MODES: Registry = Registry("pathway mode")


@dataclass
class Trace:
    """A simulated stream: ``values`` (steps, n_in) read at t_n in units of B^T e, ``predicted`` (the analytic
    mean), ``target`` (B^T e(t), instantaneous), ``gain`` (spiking: k(t) in Hz per error unit, (steps,))."""

    mode: str
    dale: bool
    times: np.ndarray
    values: np.ndarray
    predicted: np.ndarray
    target: np.ndarray
    gain: np.ndarray | None = None
    sign_violations: int = 0
    neurons: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


class PathwayMode:
    """Base class: ``dt`` (Brian2 time) and the stage time constant
    ([`tau_s`][biocircuits.bridges.brian2.modes.PathwayMode.tau_s], seconds). Each mode also says how long its checks
    hold a pattern by default (``hold``, ``chain_hold``), how many of its time constants a switch needs to settle
    (``settle_taus``) and how many neurons carry one signed unit (``neurons_per_unit``)."""

    name: ClassVar[str]
    variable: ClassVar[str]
    hold: ClassVar[Any]
    chain_hold: ClassVar[Any]
    settle_taus: ClassVar[float]
    neurons_per_unit: ClassVar[int]

    def __init__(self, dt: Any) -> None:
        self.dt = dt

    @property
    def dt_s(self) -> float:
        return seconds(self.dt)

    @property
    def tau_s(self) -> float:
        raise NotImplementedError

    def transfer(self, frequency: np.ndarray, relays: Relays | None = None) -> np.ndarray:
        """Continuous-time complex gain H(f) of the pathway (``frequency`` in Hz)."""
        w = 2j * math.pi * np.asarray(frequency, dtype=float)
        h = 1.0 / (1.0 + w * self.tau_s)
        if relays is not None:
            h = h * (1.0 + np.exp(-w * self.dt_s / 2) / (1.0 + w * seconds(relays.tau))) / 2
        return h

    def predict(self, B: np.ndarray, stream: ErrorStream, relays: Relays | None = None) -> np.ndarray:
        """The mean readout on the grid (steps, n_in): the discrete low-pass of B^T e (relays: of (s + L_r s)/2)."""
        s = stream.values @ B
        if relays is not None:
            s = (s + lowpass(s, math.exp(-self.dt_s / seconds(relays.tau)))) / 2
        return lowpass(s, math.exp(-self.dt_s / self.tau_s))

    def window_noise(
        self, B: np.ndarray, e: np.ndarray, window: float, relays: Relays | None = None, gain: float | None = None
    ) -> float:
        """Expected ||noise||^2 of the readout averaged over ``window`` s (long-window limit), normalised units."""
        return 0.0

    def bias(self, B: np.ndarray, e: np.ndarray, relays: Relays | None = None, gain: float | None = None) -> np.ndarray:
        """The readout's expected shift from B^T e for held e (n_in,), normalised units: 0 unless a mode's relays
        rectify their noise ([`relays`][biocircuits.bridges.brian2.relays])."""
        return np.zeros(B.shape[1])

    def simulate(
        self,
        B: np.ndarray,
        stream: ErrorStream,
        relays: Relays | None = None,
        *,
        seed: int = 0,
        codegen_target: str = "numpy",
    ) -> Trace:
        """Run the network on ``stream`` (its dt must equal the mode's) and read it on the grid."""
        if abs(stream.dt - self.dt_s) > 1e-12:
            raise ValueError(f"the stream's dt ({stream.dt} s) differs from the mode's ({self.dt_s} s)")
        t0 = time.perf_counter()
        with session(codegen_target, seed) as bb:
            objects, monitored, signed, neurons, norm = self._build(bb, B, stream, relays)
            mon = bb.StateMonitor(monitored, self.variable, record=True, dt=self.dt)
            bb.Network(*objects, mon).run(stream.steps * self.dt, namespace={})
            values = np.asarray(getattr(mon, self.variable)).T[: stream.steps] / norm[: stream.steps, None]
        bad = sum(int(np.sum(np.asarray(syn.w[:]) * sign < 0)) for syn, sign in signed if sign)
        gain = self.error_gain(norm)
        return Trace(
            self.name,
            relays is not None,
            stream.times,
            values,
            self.predict(B, stream, relays),
            stream.values @ B,
            gain,
            bad,
            neurons,
            time.perf_counter() - t0,
        )

    def error_gain(self, norm: np.ndarray) -> np.ndarray | None:
        """k(t) (Hz per error unit, (steps,)) from the readout's normalisation; None for a mode without rates."""
        return None

    def _build(self, bb: Any, B: np.ndarray, stream: ErrorStream, relays: Relays | None):
        raise NotImplementedError


@MODES.register
class RateMode(PathwayMode):
    """Continuous leaky integrators of time constant ``tau``; exact (noise-free without relay noise)."""

    name = "rate"
    variable = "r"
    hold, chain_hold, settle_taus, neurons_per_unit = 200 * MS, 300 * MS, 8, 1

    @check_units(tau=SECOND, dt=SECOND)
    def __init__(self, tau: Any = 10 * MS, dt: Any = 0.1 * MS) -> None:
        super().__init__(dt)
        self.tau = tau

    @property
    def tau_s(self) -> float:
        return seconds(self.tau)

    def __repr__(self) -> str:
        return f"RateMode(tau={self.tau}, dt={self.dt})"

    def window_noise(self, B, e, window, relays=None, gain=None) -> float:
        if relays is None or relays.noise == 0:
            return 0.0
        base = float(np.abs(e).max())
        return float(np.sum(B**2)) * (relays.noise * base) ** 2 * seconds(relays.tau) / (2 * window)

    def _build(self, bb, B, stream, relays):
        if relays is None:
            return self._build_direct(bb, B, stream)
        return self._build_dale(bb, B, stream, relays)

    def _build_direct(self, bb, B, stream):
        """Error units e_o(t) wired straight to the integrators with w = B[o, i]."""
        n_out, n_in = B.shape
        tab = table(bb, stream.values, self.dt)
        err = bb.NeuronGroup(n_out, "err = tab(t, i) : 1", dt=self.dt, name="error_units", namespace={"tab": tab})
        target = bb.NeuronGroup(
            n_in,
            "dr/dt = (-r + I) / tau : 1\nI : 1",
            dt=self.dt,
            name="target_units",
            namespace={"tau": self.tau},
            method="exact",
        )
        syn = connect(
            bb, err, target, B, "w : 1\nI_post = w * err_pre : 1 (summed)", None, "syn_feedback", {"tab": tab}
        )
        return [err, target, syn], target, [], {"error": n_out, "target": n_in, "relay": 0}, np.ones(stream.steps)

    def _build_dale(self, bb, B, stream, relays):
        """Excitatory pairs u+- = base +- e, their inhibitory relays, and the four sign-constrained synapse groups."""
        n_out, n_in = B.shape
        dt = self.dt
        base = float(np.abs(stream.values).max()) + 1e-12
        tab = table(bb, np.concatenate([base + stream.values, base - stream.values], axis=1), dt)
        err = bb.NeuronGroup(2 * n_out, "err = tab(t, i) : 1", dt=dt, name="error_units", namespace={"tab": tab})
        relay, to_relay = rate_relays(bb, err, 2 * n_out, relays, base, dt, tab)
        inputs = [f"I_{name}" for name, _, _ in split(B, True)]
        model = f"dr/dt = (-r + ({' + '.join(inputs)}) / 2) / tau : 1\n" + "\n".join(f"{v} : 1" for v in inputs)
        target = bb.NeuronGroup(n_in, model, dt=dt, name="target_units", namespace={"tau": self.tau}, method="exact")
        groups = {
            "plus": (err[:n_out], "err"),
            "minus": (err[n_out:], "err"),
            "relay_plus": (relay[:n_out], "x"),
            "relay_minus": (relay[n_out:], "x"),
        }
        objects, signed = [err, relay, target, to_relay], [(to_relay, 1.0)]
        for name, matrix, sign in split(B, True):
            src, var = groups[name]
            model = f"w : 1\nI_{name}_post = w * {var}_pre : 1 (summed)"
            syn = connect(bb, src, target, matrix, model, None, f"syn_{name}", {"tab": tab})
            objects.append(syn)
            signed.append((syn, sign))
        return objects, target, signed, {"error": 2 * n_out, "target": n_in, "relay": 2 * n_out}, np.ones(stream.steps)


@MODES.register
class SpikingMode(PathwayMode):
    """Push-pull Poisson error neurons around ``rate`` (r0) and current synapses of time constant ``tau_syn``."""

    name = "spiking"
    variable = "I"
    hold, chain_hold, settle_taus, neurons_per_unit = 500 * MS, 1 * SECOND, 5, 2

    @check_units(tau_syn=SECOND, rate=HZ, dt=SECOND)
    def __init__(self, tau_syn: Any = 5 * MS, rate: Any = 200 * HZ, dt: Any = 0.1 * MS) -> None:
        super().__init__(dt)
        self.tau_syn, self.rate = tau_syn, rate

    @property
    def tau_s(self) -> float:
        return seconds(self.tau_syn)

    @property
    def r0(self) -> float:
        return hertz(self.rate)

    def __repr__(self) -> str:
        return f"SpikingMode(tau_syn={self.tau_syn}, rate={self.rate}, dt={self.dt})"

    def window_noise(self, B, e, window, relays=None, gain=None) -> float:
        """Poisson: f sum_o ||B[o]||^2 (r+_o + r-_o) / (T (2k)^2); with relays each relay spike train adds its
        input's and its own Poisson variance and its rate noise's 2 sigma^2 tau_r (k = r0 / max|e| by default).
        f = 1 - (tau_s / T)(1 - exp(-T / tau_s)) is the exact finite-window factor of the synaptic filter (the
        mean over T of shot noise low-passed by tau_s, from its stationary state)."""
        k = gain if gain is not None else self.r0 / max(float(np.abs(e).max()), 1e-300)
        rp, rm = self.r0 + k * e, self.r0 - k * e
        if relays is None:
            var = np.sum(B**2, axis=1) @ (rp + rm)
        else:
            extra = 2 * (relays.noise * self.r0) ** 2 * seconds(relays.tau)
            bp, bm = np.sum(np.maximum(B, 0) ** 2, axis=1), np.sum(np.maximum(-B, 0) ** 2, axis=1)
            var = bp @ (rp + 2 * rm + extra) + bm @ (rm + 2 * rp + extra)
        f = 1 - self.tau_s / window * -math.expm1(-window / self.tau_s)
        return f * float(var) / (window * (2 * k) ** 2)

    def error_gain(self, norm: np.ndarray) -> np.ndarray:
        """k = norm (1 - exp(-dt / tau_s)) / (2 dt), the inverse of the readout's normalisation."""
        return norm * -math.expm1(-self.dt_s / self.tau_s) / (2 * self.dt_s)

    def bias(self, B, e, relays=None, gain=None) -> np.ndarray:
        """The relays' rectified noise: [`relay_bias`][biocircuits.bridges.brian2.relays.relay_bias] (0 without relays
        or relay noise)."""
        if relays is None:
            return np.zeros(B.shape[1])
        return relay_bias(B, e, relays, self.r0, self.dt_s, gain)

    def _build(self, bb, B, stream, relays):
        n_out, n_in = B.shape
        dt, hz = self.dt, bb.Hz
        k = window_gain(stream, self.r0)
        ke = k[:, None] * stream.values
        rates = np.clip(np.concatenate([self.r0 + ke, self.r0 - ke], axis=1), 0, None)
        tab = table(bb, rates, dt, hz)
        err = bb.PoissonGroup(2 * n_out, rates="tab(t, i)", dt=dt, name="error_neurons", namespace={"tab": tab})
        target = bb.NeuronGroup(
            n_in,
            "dI/dt = -I / tau_syn : 1",
            dt=dt,
            name="target_neurons",
            namespace={"tau_syn": self.tau_syn},
            method="exact",
        )
        objects: list[Any] = [err, target]
        sources = {"plus": err[:n_out], "minus": err[n_out:]}
        signed: list[tuple[Any, float]] = []
        if relays is not None:
            relay, to_relay = spiking_relays(bb, err, 2 * n_out, relays, self.r0, dt, self.dt_s)
            objects += [relay, to_relay]
            signed.append((to_relay, 1.0))
            sources |= {"relay_plus": relay[:n_out], "relay_minus": relay[n_out:]}
        for name, matrix, sign in split(B, relays is not None):
            syn = connect(bb, sources[name], target, matrix, "w : 1", "I_post += w", f"syn_{name}")
            objects.append(syn)
            signed.append((syn, sign))
        norm = 2 * k * self.dt_s / -math.expm1(-self.dt_s / self.tau_s)
        neurons = {"error": 2 * n_out, "target": n_in, "relay": 2 * n_out if relays is not None else 0}
        return objects, target, signed, neurons, norm


def make_mode(mode: str | PathwayMode) -> PathwayMode:
    """A mode instance from a registered name (default parameters) or an instance (returned as is)."""
    if isinstance(mode, PathwayMode):
        return mode
    require_brian2()
    return MODES.get(mode)()
