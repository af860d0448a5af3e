"""Network wiring shared by the pathway modes ([`modes`][biocircuits.bridges.brian2.modes]) and the chains
([`chain`][biocircuits.bridges.brian2.chain]): the synapse groups of a (Dale) pathway, synapses from a weight matrix,
tables on the simulation grid, the spiking gain control k(t), and the inhibitory relay interneurons of
[`Relays`][biocircuits.bridges.brian2.relays.Relays] (rate and spiking)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .relays import Relays
from .streams import ErrorStream


def split(B: np.ndarray, dale: bool) -> list[tuple[str, np.ndarray, float]]:
    """(source, weights (n_out, n_in), sign its neurons must have; 0 = free) for each synapse group."""
    if not dale:
        return [("plus", B, 0.0), ("minus", -B, 0.0)]
    bp, bm = np.maximum(B, 0), np.maximum(-B, 0)
    return [("plus", bp, 1.0), ("minus", bm, 1.0), ("relay_plus", -bm, -1.0), ("relay_minus", -bp, -1.0)]


def connect(
    bb: Any,
    source: Any,
    target: Any,
    matrix: np.ndarray,
    model: str,
    on_pre: str | None,
    name: str,
    namespace: dict | None = None,
) -> Any:
    """Synapses from every source neuron o to every target i with w = matrix[o, i] (zeros skipped)."""
    rows, cols = np.nonzero(matrix)
    syn = bb.Synapses(source, target, model=model, on_pre=on_pre, name=name, namespace=namespace or {})
    syn.connect(i=rows, j=cols)
    syn.w = matrix[rows, cols]
    return syn


def table(bb: Any, values: np.ndarray, dt: Any, unit: Any = 1) -> Any:
    """A TimedArray of ``values`` (steps, n) on the simulation grid."""
    return bb.TimedArray(np.ascontiguousarray(values) * unit, dt=dt)


def window_gain(stream: ErrorStream, scale: float) -> np.ndarray:
    """k(t) = scale / max|e| over each window (``stream.gain_per_window``), else over the whole stream, (steps,)."""
    peak = np.abs(stream.values).max(axis=1)
    if stream.hold and stream.gain_per_window:
        n = stream.hold
        per = np.array([peak[i : i + n].max() for i in range(0, stream.steps, n)])
        peak = np.repeat(per, n)[: stream.steps]
    else:
        peak = np.full(stream.steps, peak.max())
    return scale / np.maximum(peak, 1e-300)


def rate_relays(bb: Any, err: Any, n: int, relays: Relays, base: float, dt: Any, tab: Any) -> tuple[Any, Any]:
    """``n`` rate relays, tau_r dx/dt = -x + u + noise base sqrt(2 tau_r) xi (starting at ``base``), and their
    one-to-one input synapses from the error units ``err`` (u = err)."""
    sigma = relays.noise * base
    eq = "dx/dt = (-x + u) / tau_r" + (" + sigma * sqrt(2 / tau_r) * xi" if sigma else "") + " : 1\nu : 1"
    relay = bb.NeuronGroup(
        n, eq, dt=dt, name="inhibitory_relays", method=relays.method, namespace={"tau_r": relays.tau, "sigma": sigma}
    )
    relay.x = base
    to_relay = bb.Synapses(
        err, relay, "w : 1\nu_post = w * err_pre : 1 (summed)", name="to_relays", namespace={"tab": tab}
    )
    to_relay.connect(j="i")
    to_relay.w = 1.0
    return relay, to_relay


def spiking_relays(bb: Any, err: Any, n: int, relays: Relays, r0: float, dt: Any, dt_s: float) -> tuple[Any, Any]:
    """``n`` spiking relays, Poisson neurons whose rate rho (starting at r0) obeys tau_r drho/dt = -rho + noise r0
    sqrt(2 tau_r) xi, and their one-to-one input synapses from the Poisson error neurons ``err``: each input spike
    raises rho by (exp(dt/tau_r) - 1)/dt, one relay spike per input spike on average."""
    hz = bb.Hz
    sigma = relays.noise * r0 * hz
    eq = "drho/dt = -rho / tau_r" + (" + sigma * sqrt(2 / tau_r) * xi" if relays.noise else "") + " : Hz"
    relay = bb.NeuronGroup(
        n,
        eq,
        threshold="rand() < rho * dt",
        dt=dt,
        name="inhibitory_relays",
        method=relays.method,
        namespace={"tau_r": relays.tau, "sigma": sigma},
    )
    relay.rho = r0 * hz
    jump_dt = relays.decay_and_jump(dt_s)[1]  # one relay spike per input spike on average
    to_relay = bb.Synapses(
        err, relay, "w : 1", on_pre="rho_post += w * jump", name="to_relays", namespace={"jump": jump_dt / dt_s * hz}
    )
    to_relay.connect(j="i")
    to_relay.w = 1.0
    return relay, to_relay
