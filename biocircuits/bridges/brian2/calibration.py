"""Spiking noise as ``phases:`` settings: a torch run can learn under the error noise that a Brian2 spiking
pathway of baseline rate r0 and averaging window T would add (a "spike budget").

The spiking readout of held error e (averaged over T) is B^T (e + nu) with nu in error space: each push-pull pair
(rates r0 +- k e_o, k = r0 / max|e|) contributes a count difference of variance (r+ + r-) T = 2 r0 T, so
var(nu_o) = 2 r0 / (T (2k)^2) = max|e|^2 / (2 r0 T). Measured, it is ||readout - B^T e||^2 / ||B||_F^2 (relays and
their noise included). The equivalent settings of [`biocircuits.phases.transforms`][biocircuits.phases.transforms]:

- ``error_noise: {sigma}`` adds sigma rms(delta) xi to delta: sigma = sqrt(mean_p var(nu | e_p)) / rms(E);
  analytic (no relays) sigma = sqrt(f mean_p max|e_p|^2 / (2 r0 T)) / rms(E), f = 1 - (tau_s/T)(1 - e^{-T/tau_s})
  the finite-window factor of the synaptic filter;
- ``error_quantization: {spikes: N}`` has variance (m / N)^2 u (1 - u) per unit (m = max|delta|, u the
  fractional part, E[u (1 - u)] = 1/6 for spread-out values): N = m / sqrt(6 mean_p var(nu | e_p)).

Each form alone carries the whole variance, so a spec takes one of them: both at once would add the variance
twice (and the quantisation would read the noisy max|delta|), so ``phases`` refuses "both".

``spike_budget`` = 2 r0 T is the spike count of a pair over one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._backend import as_errors, check_units, feedback_matrix, hertz, seconds
from .modes import Relays, SpikingMode
from .pathway import PathwayReport, check_pathway, default_settle, relays_of
from .streams import HZ, MS, SECOND

FORMS = ("noise", "quantization")


@dataclass
class Calibration:
    """Calibrated settings for rate r0 (``rate_hz``) and window T (``window_s``): ``sigma`` (measured) and
    ``sigma_analytic`` for ``error_noise``, ``spikes`` for ``error_quantization``, and the bridge's mean
    cosine (measured and Poisson-predicted) that they reproduce."""

    rate_hz: float
    window_s: float
    dale: bool
    sigma: float
    sigma_analytic: float
    spikes: int
    spike_budget: float
    cosine: float
    cosine_predicted: float
    report: PathwayReport

    def phases(self, form: str = "noise", measured: bool = True, seed: int = 0) -> dict[str, Any]:
        """The ``phases:`` section: ``form`` is noise (``error_noise``) or quantization (``error_quantization``);
        each alone carries the bridge's whole error variance (module docstring)."""
        if form not in FORMS:
            raise ValueError(
                f"form must be one of {', '.join(FORMS)} (each carries the whole spiking variance, "
                f"so one at a time), given {form!r}"
            )
        if form == "noise":
            return {"seed": seed, "error_noise": {"sigma": round(self.sigma if measured else self.sigma_analytic, 6)}}
        return {"seed": seed, "error_quantization": {"spikes": self.spikes}}

    def spec(
        self, form: str = "noise", feedback: dict[str, Any] | None = None, measured: bool = True
    ) -> dict[str, Any]:
        """A constraint spec (mapping for ``bc.apply`` or a ``constraints/`` YAML): ``feedback`` (if given) and
        the calibrated ``phases``."""
        spec: dict[str, Any] = {} if feedback is None else {"feedback": dict(feedback)}
        spec["phases"] = self.phases(form, measured)
        return spec

    def header(self) -> str:
        """YAML comment lines saying where the numbers come from."""
        return (
            f"# Brian2 spike budget: r0 {self.rate_hz:g} Hz, window {self.window_s * 1e3:g} ms"
            f"{', Dale relays' if self.dale else ''} (2 r0 T = {self.spike_budget:g} spikes per pair)\n"
            f"# bridge cosine {self.cosine:.4f} (Poisson {self.cosine_predicted:.4f}); sigma measured "
            f"{self.sigma:.4f}, analytic {self.sigma_analytic:.4f}; equivalent spike count {self.spikes}\n"
        )

    def summary(self) -> str:
        return self.header().replace("# ", "").rstrip()


@check_units(rate=HZ, window=SECOND, tau_syn=SECOND)
def calibrate_spikes(
    layer_or_b: torch.nn.Module | torch.Tensor | np.ndarray,
    errors: torch.Tensor | np.ndarray,
    *,
    rate: Any = 200 * HZ,
    window: Any = 50 * MS,
    tau_syn: Any = 5 * MS,
    dale: bool | Relays = False,
    repeats: int = 4,
    seed: int = 0,
    codegen_target: str = "numpy",
) -> Calibration:
    """Simulate the spiking pathway on ``errors`` (patterns, out), each pattern ``repeats`` times, averaged over
    ``window`` after the synapses settle, and derive the equivalent ``phases`` settings (module docstring)."""
    B, _ = feedback_matrix(layer_or_b)
    E = as_errors(errors, B.shape[0])
    relays = relays_of(dale)
    mode = SpikingMode(tau_syn=tau_syn, rate=rate)
    settle = default_settle(mode, relays)
    T = seconds(window)
    reps = np.tile(E, (max(1, int(repeats)), 1))
    report = check_pathway(
        B,
        reps,
        mode,
        dale=relays if relays is not None else False,
        duration=(settle + T) * SECOND,
        settle=settle * SECOND,
        seed=seed,
        codegen_target=codegen_target,
    )
    window_s = report.duration_s - report.settle_s
    sim, ana = np.asarray(report.simulated), np.asarray(report.analytic)
    frob = float(np.sum(B**2))
    var_measured = float(np.mean(np.sum((sim - ana) ** 2, axis=1))) / frob
    var_analytic = float(np.mean([mode.window_noise(B, e, window_s, relays) for e in reps])) / frob
    rms = float(np.sqrt(np.mean(E**2)))
    spikes = max(1, round(float(np.abs(E).max()) / math.sqrt(6 * var_measured)))
    return Calibration(
        hertz(rate),
        window_s,
        relays is not None,
        math.sqrt(var_measured) / rms,
        math.sqrt(var_analytic) / rms,
        spikes,
        2 * hertz(rate) * window_s,
        report.mean_cosine,
        float(np.mean([p.poisson_cosine for p in report.patterns])),
        report,
    )
