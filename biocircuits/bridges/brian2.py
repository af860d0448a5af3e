"""Brian2 bridge: build a layer's feedback pathway as neurons and synapses and measure how faithfully it
delivers B^T e.

The error e (one value per output unit of the layer) drives error neurons; synapses with weights from the
feedback matrix B (shape (out, in), like the layer's weight) carry it to one target neuron per input unit.
Modes:

- ``rate``: continuous-time leaky integrators, tau dr/dt = -r + sum_o B[o, i] e_o(t), with error patterns
  switching every ``duration``; r is read at the end of each window, after settling (about 8 tau).
- ``spiking``: each signed error is coded by a push-pull pair of Poisson neurons firing at r0 +- k e_o
  around the baseline r0 (k = r0 / max_o |e_o| for each pattern: gain control, so no rate is negative and
  small errors use the whole rate range); current-based synapses
  (tau_s dI/dt = -I, a spike adds w) with w = +B[o, i] from the "+" neuron and -B[o, i] from the "-" one.
  The readout is the synaptic current averaged over each window after a settling time; its mean is
  2 k tau_s (B^T e)_i.
- ``dale=True``: B = B+ - B- (B+ = max(B, 0), B- = max(-B, 0)). Error neurons are excitatory: the "+"
  neuron projects B+ and the "-" neuron B- straight to the targets; each also drives its own inhibitory relay
  (one-to-one), and the relays project -B- (relay of "+") and -B+ (relay of "-"). Every simulated neuron
  then obeys Dale's law and the targets still receive sum_o B[o, i] (r+_o - r-_o).

Poisson bound (spiking): over an averaging window T_a the readout of target i has mean mu_i = 2 k tau_s
(B^T e)_i and variance (tau_s^2 / T_a) sum_o B[o, i]^2 (r+_o + r-_o) = 2 r0 tau_s^2 ||B[:, i]||^2 / T_a
(the same under Dale: the relays copy the error neurons' spikes, adding no noise of their own). With
rho = 2 r0 ||B||_F^2 / (T_a (2k)^2 ||B^T e||^2) the noise-to-signal power ratio, the expected cosine between
the readout and mu is

    cos* = 1 / sqrt(1 + rho)                         (PatternResult.poisson_cosine)

and, since the noise lives in the span of the 2 n_out spike trains (a chi-square with about n_out degrees of
freedom, not one per target), a run falls below

    cos_lb = 1 / sqrt(1 + 3 rho)                     (PatternResult.poisson_bound)

only rarely (chi-square tail; e.g. P < 0.002 for 9 degrees of freedom). Fidelity grows with T_a and r0.

Conv layers are checked at one output location: B (C_out, C_in/g, kh, kw) becomes the (C_out, C_in/g*kh*kw)
matrix of the kernel's patch. The simulation is one explicit ``Network`` run over all patterns, with the
``numpy`` code-generation target by default (no compiler needed); Brian2's preferences and numpy's global
random state are restored afterwards.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from biocircuits.errors import ConfigError

try:
    import brian2 as b2
except ImportError:  # the rest of biocircuits works without Brian2
    b2 = None

INSTALL_HINT = 'the Brian2 bridge needs Brian2: pip install -e ".[spiking]" (brian2 2.9 needs numpy < 2.4)'


def require_brian2() -> Any:
    """The brian2 module, or an ImportError saying what to install."""
    if b2 is None:
        raise ImportError(INSTALL_HINT)
    return b2


@dataclass
class PatternResult:
    """One error pattern: simulated vs analytic B^T e (cosine, angle in degrees, relative L2 error with the
    analytic scale, not a fitted one), the angle between B^T e and backprop's W^T e, and (spiking) the
    Poisson-predicted cosine."""

    cosine: float
    angle_deg: float
    rel_l2: float
    backprop_angle_deg: float | None = None
    poisson_cosine: float | None = None
    poisson_bound: float | None = None


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def min_cosine(self) -> float:
        return min(p.cosine for p in self.patterns)

    def summary(self) -> str:
        lines = [f"{self.mode} pathway{' (Dale)' if self.dale else ''}: B {self.shape[0]}x{self.shape[1]}, "
                 f"{len(self.patterns)} patterns x {self.duration_s:g} s, {self.wall_s:.1f} s wall, "
                 f"sign violations {self.sign_violations}"]
        for i, p in enumerate(self.patterns):
            extra = f"  Poisson cos* {p.poisson_cosine:.4f}" if p.poisson_cosine is not None else ""
            bp = f"  angle(B^T e, W^T e) {p.backprop_angle_deg:.1f} deg" if p.backprop_angle_deg is not None else ""
            lines.append(f"  pattern {i}: cos {p.cosine:.4f}  angle {p.angle_deg:.2f} deg  rel L2 {p.rel_l2:.3f}"
                         f"{extra}{bp}")
        return "\n".join(lines)


def feedback_matrix(layer_or_b: torch.nn.Module | torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(B, W) as (out, in) float64 arrays from a converted layer (B = its backward weight) or a matrix (W None).
    Conv weights are unrolled over one output location's patch."""
    if isinstance(layer_or_b, torch.nn.Module):
        B = layer_or_b.backward_weight() if hasattr(layer_or_b, "backward_weight") else layer_or_b.weight
        if B is None:
            raise ConfigError("this layer's rule has no layer-local feedback matrix to simulate",
                              given=layer_or_b.rule.name, suggestion="check a layer trained with bp, fa, "
                              "sign_symmetry, kolen_pollack or weight_mirror")
        W = layer_or_b.weight
        return _matrix(B), _matrix(W)
    return _matrix(torch.as_tensor(layer_or_b)), None


def _matrix(t: torch.Tensor) -> np.ndarray:
    t = t.detach().double().cpu()
    return t.reshape(t.shape[0], -1).numpy()


def _angle(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return math.nan, math.nan
    cos = float(np.clip(a @ b / (na * nb), -1, 1))
    return cos, math.degrees(math.acos(cos))


def _q(value: Any, unit: Any) -> Any:
    """A Brian2 quantity: ``value`` as given if it has units, else interpreted in ``unit``."""
    return value if isinstance(value, b2.Quantity) else value * unit


def check_pathway(
    layer_or_b: torch.nn.Module | torch.Tensor | np.ndarray,
    errors: torch.Tensor | np.ndarray,
    mode: str = "spiking",
    *,
    dale: bool = False,
    weight: torch.Tensor | np.ndarray | None = None,
    duration: Any = None,
    tau: Any = None,
    tau_syn: Any = None,
    baseline_rate: Any = None,
    settle: Any = None,
    dt: Any = None,
    seed: int = 0,
    codegen_target: str = "numpy",
) -> PathwayReport:
    """Simulate the feedback pathway B^T e for each row of ``errors`` (shape (patterns, out)) in Brian2.

    ``duration`` is per pattern (default 0.2 s rate, 0.5 s spiking); ``tau`` (rate, 10 ms), ``tau_syn``
    (spiking, 5 ms), ``baseline_rate`` r0 (spiking, 200 Hz), ``settle`` (skipped at each window start:
    8 tau or 5 tau_syn), ``dt`` (0.1 ms). Plain numbers are read in seconds / hertz."""
    bb = require_brian2()
    if mode not in ("rate", "spiking"):
        raise ValueError(f"mode must be 'rate' or 'spiking', given {mode!r}")
    B, W = feedback_matrix(layer_or_b)
    if weight is not None:
        W = _matrix(torch.as_tensor(weight))
    E = np.atleast_2d(torch.as_tensor(errors).detach().double().cpu().numpy())
    if E.shape[1] != B.shape[0]:
        raise ValueError(f"errors have {E.shape[1]} units per pattern but B has {B.shape[0]} rows (outputs)")
    second, hertz = bb.second, bb.Hz
    dt = _q(dt if dt is not None else 0.1e-3, second)
    duration = _q(duration if duration is not None else (0.2 if mode == "rate" else 0.5), second)
    duration = round(float(duration / dt)) * dt  # whole time steps, so pattern switches fall on the grid
    prefs_saved = bb.prefs.codegen.target
    np_state = np.random.get_state()
    t0 = time.perf_counter()
    try:
        bb.prefs.codegen.target = codegen_target
        bb.seed(seed)
        if mode == "rate":
            tau = _q(tau if tau is not None else 10e-3, second)
            settle = _q(settle if settle is not None else 8 * float(tau / second), second)
            sim, violations, neurons = _simulate_rate(bb, B, E, dale, duration, tau, dt)
            scale = 1.0
            bounds = [(None, None)] * len(E)
        else:
            tau_syn = _q(tau_syn if tau_syn is not None else 5e-3, second)
            r0 = _q(baseline_rate if baseline_rate is not None else 200.0, hertz)
            settle = _q(settle if settle is not None else 5 * float(tau_syn / second), second)
            k = float(r0 / hertz) / np.maximum(np.abs(E).max(axis=1), 1e-300)  # Hz per unit of error, per pattern
            sim, violations, neurons = _simulate_spiking(bb, B, E, dale, duration, tau_syn, r0, k, settle, dt)
            avg = float((duration - settle) / second)
            scale = (2 * k * float(tau_syn / second))[:, None]
            bounds = [_poisson_cosine(B, e, float(r0 / hertz), kp, avg) for e, kp in zip(E, k, strict=True)]
    finally:
        bb.prefs.codegen.target = prefs_saved
        np.random.set_state(np_state)
    analytic = E @ B
    results = []
    for p in range(len(E)):
        cos, ang = _angle(sim[p], analytic[p])
        scale_p = scale if np.isscalar(scale) else float(scale[p, 0])
        rel = float(np.linalg.norm(sim[p] / scale_p - analytic[p]) / max(np.linalg.norm(analytic[p]), 1e-300))
        bp = _angle(analytic[p], E[p] @ W)[1] if W is not None else None
        results.append(PatternResult(cos, ang, rel, bp, *bounds[p]))
    return PathwayReport(mode, dale, tuple(B.shape), float(duration / second), results,
                         (sim / scale).tolist(), analytic.tolist(), violations, neurons, time.perf_counter() - t0)


def _poisson_cosine(B: np.ndarray, e: np.ndarray, r0: float, k: float, t_avg: float) -> tuple[float, float]:
    """(cos*, cos_lb) of the module docstring for error pattern ``e``."""
    signal = (2 * k) ** 2 * float(np.sum((e @ B) ** 2))
    if signal <= 0:
        return math.nan, math.nan
    rho = 2 * r0 * float(np.sum(B**2)) / t_avg / signal
    return 1.0 / math.sqrt(1.0 + rho), 1.0 / math.sqrt(1.0 + 3 * rho)


def _table(bb, values: np.ndarray, duration, dt, unit: Any = 1):
    """A TimedArray holding row p of ``values`` (times ``unit``) for the p-th window of ``duration``, tabulated
    per time step so that its grid matches the groups' dt exactly."""
    steps = int(round(float(duration / dt)))
    return bb.TimedArray(np.repeat(values, steps, axis=0) * unit, dt=dt)


def _split(B: np.ndarray, dale: bool) -> list[tuple[str, np.ndarray, float]]:
    """(source, weight matrix (out, in), sign the source's neurons must have) for each synapse group.

    Sources: 'plus'/'minus' (error neurons of e and -e) and their inhibitory relays."""
    if not dale:
        return [("plus", B, 0.0), ("minus", -B, 0.0)]
    bp, bm = np.maximum(B, 0), np.maximum(-B, 0)
    return [("plus", bp, 1.0), ("minus", bm, 1.0), ("relay_plus", -bm, -1.0), ("relay_minus", -bp, -1.0)]


def _connect(bb, source, target, matrix: np.ndarray, model: str, on_pre: str | None, name: str,
             namespace: dict | None = None):
    """Synapses from every source neuron o to every target i with w = matrix[o, i] (zeros skipped)."""
    rows, cols = np.nonzero(matrix)
    syn = bb.Synapses(source, target, model=model, on_pre=on_pre, name=name, namespace=namespace or {})
    syn.connect(i=rows, j=cols)
    syn.w = matrix[rows, cols]
    return syn


def _count_violations(synapses: list[tuple[Any, float]]) -> int:
    """Synapses whose weight breaks their presynaptic neuron's declared sign (0 means no constraint)."""
    bad = 0
    for syn, sign in synapses:
        if sign:
            bad += int(np.sum(np.asarray(syn.w[:]) * sign < 0))
    return bad


def _simulate_rate(bb, B, E, dale, duration, tau, dt):
    """Leaky integrators driven by the error patterns; r read at the end of each window."""
    n_out, n_in = B.shape
    P = len(E)
    if dale:
        objects, signed, target = _rate_dale_network(bb, B, E, duration, tau, dt)
    else:
        table = _table(bb, E, duration, dt)
        errors = bb.NeuronGroup(n_out, "err = table(t, i) : 1", dt=dt, name="error_units",
                                namespace={"table": table})
        target = bb.NeuronGroup(n_in, "dr/dt = (-r + I) / tau : 1\nI : 1", dt=dt, name="target_units",
                                namespace={"tau": tau})
        syn = _connect(bb, errors, target, B, "w : 1\nI_post = w * err_pre : 1 (summed)", None, "syn_feedback",
                       {"table": table})
        objects, signed = [errors, target, syn], [(syn, 0.0)]
    mon = bb.StateMonitor(target, "r", record=True, dt=dt)
    net = bb.Network(*objects, mon)
    net.run(P * duration, namespace={})
    t = np.asarray(mon.t / bb.second)
    ends = (np.arange(1, P + 1) * float(duration / bb.second)) - float(dt / bb.second)
    idx = np.minimum(np.searchsorted(t, ends - 1e-12), len(t) - 1)
    sim = np.asarray(mon.r)[:, idx].T
    return sim, _count_violations(signed), {"error": n_out * (2 if dale else 1), "target": n_in,
                                            "relay": 2 * n_out if dale else 0}


def _rate_dale_network(bb, B, E, duration, tau, dt):
    """Rate mode under Dale: push-pull error units (base +- e, all non-negative, excitatory) reach the targets
    through B+ / B- and drive inhibitory relays (one-to-one), which reach them through -B- / -B+. The four
    inputs sum to 2 B^T e, halved: tau dr/dt = -r + (I_plus + I_minus + I_relay_plus + I_relay_minus) / 2."""
    n_out, n_in = B.shape
    base = np.abs(E).max() + 1e-12
    table = _table(bb, np.concatenate([base + E, base - E], axis=1), duration, dt)
    errors = bb.NeuronGroup(2 * n_out, "err = table(t, i) : 1", dt=dt, name="error_units",
                            namespace={"table": table})
    relays = bb.NeuronGroup(2 * n_out, "err : 1", dt=dt, name="inhibitory_relays")
    inputs = [f"I_{name}" for name, _, _ in _split(B, True)]  # Brian2 wants one summed variable per pathway
    model = f"dr/dt = (-r + ({' + '.join(inputs)}) / 2) / tau : 1\n" + "\n".join(f"{v} : 1" for v in inputs)
    target = bb.NeuronGroup(n_in, model, dt=dt, name="target_units", namespace={"tau": tau})
    relay_in = bb.Synapses(errors, relays, "w : 1\nerr_post = w * err_pre : 1 (summed)", name="to_relays",
                           namespace={"table": table})
    relay_in.connect(j="i")
    relay_in.w = 1.0
    groups = {"plus": errors[:n_out], "minus": errors[n_out:], "relay_plus": relays[:n_out],
              "relay_minus": relays[n_out:]}
    objects: list[Any] = [errors, relays, target, relay_in]
    signed = [(relay_in, 1.0)]
    for name, matrix, sign in _split(B, True):
        syn = _connect(bb, groups[name], target, matrix, f"w : 1\nI_{name}_post = w * err_pre : 1 (summed)", None,
                       f"syn_{name}", {"table": table})
        objects.append(syn)
        signed.append((syn, sign))
    return objects, signed, target


def _simulate_spiking(bb, B, E, dale, duration, tau_syn, r0, k, settle, dt):
    n_out, n_in = B.shape
    P = len(E)
    hz = bb.Hz
    kE = k[:, None] * E
    firing = np.concatenate([float(r0 / hz) + kE, float(r0 / hz) - kE], axis=1)  # (P, 2 n_out), >= 0
    rate_table = _table(bb, np.clip(firing, 0, None), duration, dt, hz)
    errors = bb.PoissonGroup(2 * n_out, rates="rate_table(t, i)", dt=dt, name="error_neurons",
                             namespace={"rate_table": rate_table})
    target = bb.NeuronGroup(n_in, "dI/dt = -I / tau_syn : 1\ndQ/dt = I / second : 1", dt=dt, name="target_neurons",
                            namespace={"tau_syn": tau_syn})
    objects: list[Any] = [errors, target]
    sources = {"plus": errors[:n_out], "minus": errors[n_out:]}
    signed: list[tuple[Any, float]] = []
    if dale:
        relays = bb.NeuronGroup(2 * n_out, "v : 1", threshold="v > 0.5", reset="v = 0", dt=dt,
                                name="inhibitory_relays")
        relay_in = bb.Synapses(errors, relays, "w : 1", on_pre="v_post += w", name="to_relays")
        relay_in.connect(j="i")
        relay_in.w = 1.0
        objects += [relays, relay_in]
        signed.append((relay_in, 1.0))
        sources |= {"relay_plus": relays[:n_out], "relay_minus": relays[n_out:]}
    for name, matrix, sign in _split(B, dale):
        syn = _connect(bb, sources[name], target, matrix, "w : 1", "I_post += w", f"syn_{name}")
        objects.append(syn)
        signed.append((syn, sign))
    starts = np.arange(P) * duration + settle
    ends = (np.arange(P) + 1) * duration
    mon = bb.StateMonitor(target, "Q", record=True, dt=dt)
    net = bb.Network(*objects, mon)
    net.run(P * duration + dt, namespace={})
    t = np.asarray(mon.t / bb.second)
    q = np.asarray(mon.Q)
    i0 = np.searchsorted(t, np.asarray(starts / bb.second) - 1e-12)
    i1 = np.searchsorted(t, np.asarray(ends / bb.second) - 1e-12)
    span = np.asarray((duration - settle) / bb.second)
    sim = ((q[:, i1] - q[:, i0]) / span).T  # time-averaged synaptic current per window, (P, n_in)
    return sim, _count_violations(signed), {"error": 2 * n_out, "target": n_in, "relay": 2 * n_out if dale else 0}
