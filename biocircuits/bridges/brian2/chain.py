"""Multi-layer feedback pathways with forward derivative gating: the error e at the top layer's output travels
down L layers' feedback matrices, gated at each hidden layer by f'(a) of the forward activity:

    s_0 = e,   s_l = g_l * (B_{l-1}^T s_{l-1})  (l = 1 .. L-1),   s_L = B_{L-1}^T s_{L-1}

(``layers`` top first, B_l of shape (n_l, n_{l+1}); for two layers s_2 = B_2^T (f'(a) * B_3^T e), the torch
reference [`chain_reference`][biocircuits.bridges.brian2.chain.chain_reference], each gate averaged over the measuring
window only: the part of a pattern's window after ``settle``, where the readout is read, so a gate's value during the
settle does not count). Each hidden layer is a population of "relay" units that integrate their input and pass it on
multiplied by the gate g_l (held: (n_l,) or one row per pattern; time-varying: (steps, n_l)):

- rate: tau dr/dt = -r + I, output g r; the readout of each stage is the cascade of L first-order low-passes;
- spiking: push-pull Poisson pairs at r_h +- k_l g_l I_l (I_l the stage's normalised synaptic current,
  k_l = r_h / max_j(|s_l,j| + 3 sigma_j) per window, sigma_j the instantaneous std of g_j I_l,j from the spikes
  below (g_j (sum_o B[o, j]^2 2 r_{l-1} / ((2 k_{l-1})^2 2 tau_s))^1/2), so noise rarely clips a rate at 0).

Poisson bound (spiking): every spiking stage l adds error-space noise z_l of variance f 2 r_l / (T_a (2 k_l)^2) per
unit (averaged over T_a; f the finite-window factor of `SpikingMode.window_noise`), carried to the readout by
M_l = B_l diag(g_{l+1}) B_{l+1} ... B_{L-1}: the readout is mu + sum_l z_l M_l. The noise is far from isotropic
(a few directions of M_l dominate), so the report draws it (Gaussian, 20000 draws): cos* is the mean of
cos(mu + noise, mu) and cos_lb its 0.1% quantile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._backend import angle, as_errors, check_units, feedback_matrix, seconds, session
from .modes import PathwayMode, make_mode
from .pathway import PatternResult
from .streams import SECOND, patterns
from .wiring import connect, table, window_gain


def chain_reference(matrices: Sequence[torch.Tensor], errors: torch.Tensor, gates: Sequence[torch.Tensor]) -> Tensor:
    """s_L of the module docstring in torch: (patterns, n_L) from errors (patterns, n_0), gates (n_l,) or
    (patterns, n_l)."""
    s = errors
    for i, B in enumerate(matrices):
        s = s @ B
        if i < len(matrices) - 1:
            s = s * gates[i]
    return s


@dataclass
class ChainReport:
    mode: str
    shapes: list[tuple[int, int]]
    duration_s: float
    patterns: list[PatternResult]
    simulated: list[list[float]]
    reference: list[list[float]]
    neurons: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def min_cosine(self) -> float:
        return min(p.cosine for p in self.patterns)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        dims = " -> ".join(str(s[0]) for s in self.shapes) + f" -> {self.shapes[-1][1]}"
        lines = [
            f"{self.mode} {len(self.shapes)}-layer gated pathway ({dims}), {len(self.patterns)} patterns x "
            f"{self.duration_s:g} s, {self.wall_s:.1f} s wall, checked against torch B^T (f'(a) * B^T e)"
        ]
        for i, p in enumerate(self.patterns):
            extra = f"  Poisson cos* {p.poisson_cosine:.4f} (bound {p.poisson_bound:.4f})" if p.poisson_cosine else ""
            lines.append(f"  pattern {i}: cos {p.cosine:.4f}  rel L2 {p.rel_l2:.3f}{extra}")
        return "\n".join(lines)


def _gate_table(gate: np.ndarray, n: int, steps: int, hold: int, patterns_: int) -> np.ndarray:
    """A gate as (steps, n): held (n,), one row per pattern (patterns, n), or time-varying (steps, n)."""
    g = np.asarray(gate, dtype=float)
    if g.ndim == 1 and g.shape == (n,):
        return np.broadcast_to(g, (steps, n))
    if g.ndim == 2 and g.shape == (patterns_, n):
        return np.repeat(g, hold, axis=0)
    if g.ndim == 2 and g.shape == (steps, n):
        return g
    raise ValueError(
        f"a gate for {n} hidden units must have shape ({n},), ({patterns_}, {n}) or ({steps}, {n}); given {g.shape}"
    )


@check_units(duration=SECOND, settle=SECOND)
def check_chain(
    layers: Sequence[torch.nn.Module | torch.Tensor | np.ndarray],
    errors: torch.Tensor | np.ndarray,
    gates: Sequence[torch.Tensor | np.ndarray],
    mode: str | PathwayMode = "spiking",
    *,
    duration: Any = None,
    settle: Any = None,
    hidden_rate: float | None = None,
    seed: int = 0,
    codegen_target: str = "numpy",
) -> ChainReport:
    """Simulate the gated chain for each row of ``errors`` held ``duration`` (default 0.3 s rate, 1 s spiking)
    and compare the readout, averaged after ``settle`` (default (8 + 6 (L - 1)) time constants, at most half a
    window), with [`chain_reference`][biocircuits.bridges.brian2.chain.chain_reference]. ``hidden_rate`` (Hz) is r_h of
    the spiking relays (default r0)."""
    m = make_mode(mode)
    Bs = _chained_matrices(layers, len(gates))
    E = as_errors(errors, Bs[0].shape[0])
    hold = seconds(duration if duration is not None else m.chain_hold)
    stream = patterns(E, hold=hold * SECOND, dt=m.dt)
    n, steps = stream.hold, stream.steps
    G = [
        _gate_table(torch.as_tensor(g).double().numpy(), B.shape[1], steps, n, len(E))
        for g, B in zip(gates, Bs[:-1], strict=True)
    ]
    t0 = time.perf_counter()
    with session(codegen_target, seed) as bb:
        build = CHAIN_BUILDERS[m.name]
        objects, target, norm, noise_terms = build(bb, m, Bs, stream, G, hidden_rate)
        mon = bb.StateMonitor(target, m.variable, record=True, dt=m.dt)
        bb.Network(*objects, mon).run(steps * m.dt, namespace={})
        values = np.asarray(getattr(mon, m.variable)).T[:steps] / norm[:steps, None]
    settle_s = seconds(settle) if settle is not None else min((8 + 6 * (len(Bs) - 1)) * m.tau_s, hold / 2)
    skip = int(round(settle_s / m.dt_s))
    measured = [slice(p * n + skip, (p + 1) * n) for p in range(len(E))]  # each window after settling
    sim = np.stack([values[w].mean(axis=0) for w in measured])
    gate_means = [torch.as_tensor(np.stack([g[w].mean(0) for w in measured])) for g in G]
    ref = chain_reference([torch.as_tensor(B) for B in Bs], torch.as_tensor(E), gate_means).numpy()
    results = _pattern_results(sim, ref, noise_terms, measured, (n - skip) * m.dt_s, m.tau_s)
    neurons = {
        "error": Bs[0].shape[0] * m.neurons_per_unit,
        "target": Bs[-1].shape[1],
        "relay": sum(B.shape[1] for B in Bs[:-1]) * m.neurons_per_unit,
    }
    shapes = [tuple(B.shape) for B in Bs]
    return ChainReport(m.name, shapes, hold, results, sim.tolist(), ref.tolist(), neurons, time.perf_counter() - t0)


def _chained_matrices(layers: Sequence[Any], n_gates: int) -> list[np.ndarray]:
    """The layers' feedback matrices B_l, checked to chain (B_l's inputs are B_{l+1}'s outputs) and to have one gate
    per hidden layer."""
    Bs = [feedback_matrix(layer)[0] for layer in layers]
    for i in range(len(Bs) - 1):
        if Bs[i].shape[1] != Bs[i + 1].shape[0]:
            raise ValueError(
                f"layer {i} feeds {Bs[i].shape[1]} units back but layer {i + 1} has {Bs[i + 1].shape[0]} outputs"
            )
    if n_gates != len(Bs) - 1:
        raise ValueError(f"{len(Bs)} layers need {len(Bs) - 1} gates (one per hidden layer), given {n_gates}")
    return Bs


def _pattern_results(
    sim: np.ndarray, ref: np.ndarray, noise_terms: list, measured: list[slice], window: float, tau_s: float
) -> list[PatternResult]:
    """Each pattern's cosine, angle and relative L2 error against the reference, with its Poisson cosines (spiking:
    the noise terms averaged over the measuring ``window`` s, f = 1 - (tau_s / T)(1 - exp(-T / tau_s)))."""
    results = []
    for p in range(len(sim)):
        cos, ang = angle(sim[p], ref[p])
        rel = float(np.linalg.norm(sim[p] - ref[p]) / max(np.linalg.norm(ref[p]), 1e-300))
        bounds = (None, None)
        if noise_terms:
            bounds = _poisson_cosines(
                ref[p],
                [term(p, measured[p]) for term in noise_terms],
                (1 + math.expm1(-window / tau_s) * tau_s / window) / window,
            )
        results.append(PatternResult(cos, ang, rel, None, *bounds))
    return results


def _poisson_cosines(
    mu: np.ndarray, parts: list[tuple[float, np.ndarray]], scale: float, draws: int = 20000
) -> tuple[float, float]:
    """(mean, 0.1% quantile) of cos(mu + n, mu), n = sum_l sqrt(scale c_l) z_l M_l for parts (c_l, M_l)."""
    rng = np.random.default_rng(0)
    noise = sum(math.sqrt(scale * c) * rng.standard_normal((draws, M.shape[0])) @ M for c, M in parts)
    y = noise + mu
    cos = (y @ mu) / np.maximum(np.linalg.norm(y, axis=1) * np.linalg.norm(mu), 1e-300)
    return float(cos.mean()), float(np.quantile(cos, 0.001))


def _rate_chain(bb, m, Bs, stream, G, hidden_rate):
    dt = m.dt
    tab = table(bb, stream.values, dt)
    src = bb.NeuronGroup(Bs[0].shape[0], "out = tab(t, i) : 1", dt=dt, name="error_units", namespace={"tab": tab})
    objects = [src]
    gates = [table(bb, g, dt) for g in G]
    for i, B in enumerate(Bs):
        last = i == len(Bs) - 1
        eq = "dr/dt = (-r + I) / tau : 1\nI : 1" + ("" if last else "\nout = gate(t, i) * r : 1")
        ns = {"tau": m.tau} | ({} if last else {"gate": gates[i]})
        group = bb.NeuronGroup(
            B.shape[1], eq, dt=dt, name="target_units" if last else f"relays_{i + 1}", namespace=ns, method="exact"
        )
        syn = connect(
            bb,
            src,
            group,
            B,
            "w : 1\nI_post = w * out_pre : 1 (summed)",
            None,
            f"syn_{i}",
            {"tab": tab} | ({"gate": gates[i - 1]} if i else {}),
        )
        objects += [group, syn]
        src = group
    return objects, src, np.ones(stream.steps), []


def _spiking_chain(bb, m, Bs, stream, G, hidden_rate):
    """Stage 0: Poisson pairs r0 +- k e; stage l: pairs r_h +- c_l(t, i) I_l, c_l = k_l g_l / (the current's
    normalisation at threshold time, 2 k_{l-1} dt e^{-a} / (1 - e^{-a}))."""
    dt, hz, r0 = m.dt, bb.Hz, m.r0
    r_h = float(hidden_rate) if hidden_rate is not None else r0
    k = window_gain(stream, r0)
    ke = k[:, None] * stream.values
    src = bb.PoissonGroup(
        2 * Bs[0].shape[0],
        rates="tab(t, i)",
        dt=dt,
        name="error_neurons",
        namespace={"tab": table(bb, np.clip(np.concatenate([r0 + ke, r0 - ke], 1), 0, None), dt, hz)},
    )
    objects: list[Any] = [src]
    signal = stream.values
    rates, gains = [r0], [k]
    for i, B in enumerate(Bs):
        last = i == len(Bs) - 1
        width = 1 if last else 2
        weights = np.concatenate([np.tile(B, (1, width)), -np.tile(B, (1, width))], axis=0)
        if last:
            group = bb.NeuronGroup(
                B.shape[1],
                "dI/dt = -I / tau_syn : 1",
                dt=dt,
                name="target_neurons",
                namespace={"tau_syn": m.tau_syn},
                method="exact",
            )
        else:
            group, signal, k_next = _hidden_stage(bb, m, i, B, G[i], signal, rates[-1], gains[-1], r_h, stream)
            rates.append(r_h)
            gains.append(k_next)
        syn = connect(bb, src, group, weights, "w : 1", "I_post += w", f"syn_{i}")
        objects += [group, syn]
        src = group
    return objects, src, 2 * gains[-1] * _unit_norm(m)[1], _carried_noise(Bs, G, rates, gains, stream.hold)


def _unit_norm(m: PathwayMode) -> tuple[float, float]:
    """(e^{-a}, the recorded current per unit rate dt / (1 - e^{-a})), a = dt / tau_s: Hz -> normalised."""
    decay = math.exp(-m.dt_s / m.tau_s)
    return decay, m.dt_s / (1 - decay)


def _hidden_stage(bb, m, i, B, gate, signal, rate, gain, r_h, stream):
    """Hidden layer i + 1 as push-pull Poisson pairs r_h +- c(t, j) I_j fed by the stage below (rate ``rate``, gain
    ``gain``): the group, the gated signal s_{i+1} = g (s_i B) and its gain k_{i+1} = r_h / max_j(|s_j| + 3 sigma_j)
    per window."""
    decay, unit_norm = _unit_norm(m)
    n_next = B.shape[1]
    # instantaneous noise std of the gated, normalised current of each hidden unit (steps, n_next)
    inst = gate * np.sqrt(np.sum(B**2, axis=0)[None, :] * 2 * rate / (2 * gain[:, None]) ** 2 / (2 * m.tau_s))
    signal = gate * (signal @ B)
    peak = (np.abs(signal) + 3 * inst).max(axis=1)
    per = np.repeat([peak[j : j + stream.hold].max() for j in range(0, stream.steps, stream.hold)], stream.hold)
    k_next = r_h / np.maximum(per, 1e-300)
    c = (k_next / (2 * gain * unit_norm * decay))[:, None] * gate
    group = bb.NeuronGroup(
        2 * n_next,
        "dI/dt = -I / tau_syn : 1\nsgn : 1 (constant)\n"
        "rate = clip(r_h + sgn * coupling(t, i) * I, 0 * Hz, 1 / dt) : Hz",
        threshold="rand() < rate * dt",
        dt=m.dt,
        name=f"relays_{i + 1}",
        method="exact",
        namespace={
            "tau_syn": m.tau_syn,
            "r_h": r_h * bb.Hz,
            "coupling": table(bb, np.concatenate([c, c], axis=1), m.dt, bb.Hz),
        },
    )
    group.sgn = np.concatenate([np.ones(n_next), -np.ones(n_next)])
    return group, signal, k_next


def _carried_noise(Bs, G, rates, gains, hold):
    """One term per spiking stage l: term(p, window) = (2 r_l / (2 k_l)^2 for pattern p, M_l), the noise carried
    from stage l to the readout by M_l = B_l diag(g_{l+1}) ... B_{L-1} (gates averaged over ``window``)."""
    carried = []
    for stage in range(len(Bs)):

        def term(p, window, stage=stage):
            M = Bs[stage]
            for j in range(stage + 1, len(Bs)):
                g = G[j - 1][window].mean(0)
                M = (M * g) @ Bs[j]
            kp = float(gains[stage][p * hold])
            return 2 * rates[stage] / (2 * kp) ** 2, M

        carried.append(term)
    return carried


CHAIN_BUILDERS = {"rate": _rate_chain, "spiking": _spiking_chain}  # a mode's chain network, by mode name
