"""How well a simulated trace y(t) (steps, n_in) tracks the feedback signal s(t) = B^T e(t): per time bin (cosine,
gain), over the whole stream (lag), and at one frequency (gain and phase of a fitted sinusoid)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._backend import angle


@dataclass
class Tracking:
    """Tracking of s(t) by the readout y(t), in bins of ``bin_s`` seconds (bin means of y and s compared):

    - ``cosine[b]`` = cos(y_b, s_b), ``gain[b]`` = y_b . s_b / |s_b|^2 (1 = right amplitude, < 1 attenuated);
      ``mean_gain`` pools the bins, sum_b y_b . s_b / sum_b |s_b|^2 (robust where some |s_b| are tiny);
    - ``cosine_predicted`` / ``gain_predicted``: the same for the analytic mean readout (the low-pass alone);
    - ``poisson_cosine[b]``: the expected cos(y_b, mean) from the spike noise, 1 / sqrt(1 + noise / |mean|^2);
    - ``lag_s``: the shift L maximising cos(y(t + L), s(t)) over the stream, beside ``lag_predicted_s``.
    """

    bin_s: float
    cosine: list[float]
    gain: list[float]
    cosine_predicted: list[float]
    gain_predicted: list[float]
    poisson_cosine: list[float] = field(default_factory=list)
    lag_s: float = 0.0
    lag_predicted_s: float = 0.0
    pooled_gain: float = math.nan
    pooled_gain_predicted: float = math.nan

    @property
    def mean_cosine(self) -> float:
        return float(np.nanmean(self.cosine))

    @property
    def mean_cosine_predicted(self) -> float:
        return float(np.nanmean(self.cosine_predicted))

    @property
    def mean_gain(self) -> float:
        return self.pooled_gain

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        poisson = f", Poisson cos* {np.nanmean(self.poisson_cosine):.4f}" if self.poisson_cosine else ""
        return (
            f"tracking over {len(self.cosine)} bins of {self.bin_s * 1e3:g} ms: cosine {self.mean_cosine:.4f} "
            f"(analytic {self.mean_cosine_predicted:.4f}{poisson}), gain {self.mean_gain:.3f} "
            f"(analytic {self.pooled_gain_predicted:.3f}), lag {self.lag_s * 1e3:.2f} ms "
            f"(analytic {self.lag_predicted_s * 1e3:.2f} ms)"
        )


def bin_means(x: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Means of consecutive blocks of ``n`` rows of x[start:] (a last partial block is dropped)."""
    x = x[start:]
    m = len(x) // n
    return x[: m * n].reshape(m, n, *x.shape[1:]).mean(axis=1)


def _gain(y: np.ndarray, s: np.ndarray) -> float:
    ss = float(s @ s)
    return float(y @ s) / ss if ss > 0 else math.nan


def best_lag(y: np.ndarray, s: np.ndarray, max_steps: int) -> int:
    """The shift L in [0, max_steps] (steps) maximising cos(y[L:], s[:len - L]) over all entries."""
    scores = []
    for lag in range(max_steps + 1):
        a, b = y[lag:], s[: len(s) - lag]
        scores.append(float(np.sum(a * b)) / max(float(np.sqrt(np.sum(a * a) * np.sum(b * b))), 1e-300))
    return int(np.argmax(scores))


def tracking(
    values: np.ndarray,
    predicted: np.ndarray,
    target: np.ndarray,
    dt: float,
    bin_steps: int,
    noise: list[float] | None = None,
    start: int = 0,
    max_lag_steps: int = 500,
) -> Tracking:
    """The [`Tracking`][biocircuits.bridges.brian2.metrics.Tracking] of ``values`` against ``target`` (both (steps,
    n_in)) from step ``start`` on; ``noise[b]`` is the expected squared norm of bin b's readout noise (normalised
    units)."""
    y, p, s = (bin_means(a, bin_steps, start) for a in (values, predicted, target))
    cos = [angle(a, b)[0] for a, b in zip(y, s, strict=True)]
    cos_p = [angle(a, b)[0] for a, b in zip(p, s, strict=True)]
    poisson = (
        []
        if noise is None
        else [1 / math.sqrt(1 + nz / max(float(m @ m), 1e-300)) for nz, m in zip(noise, p, strict=False)]
    )
    max_lag = min(max_lag_steps, (len(values) - start) // 2)
    return Tracking(
        bin_steps * dt,
        cos,
        [_gain(a, b) for a, b in zip(y, s, strict=True)],
        cos_p,
        [_gain(a, b) for a, b in zip(p, s, strict=True)],
        poisson,
        best_lag(values[start:], target[start:], max_lag) * dt,
        best_lag(predicted[start:], target[start:], max_lag) * dt,
        _gain(y.ravel(), s.ravel()),
        _gain(p.ravel(), s.ravel()),
    )


@dataclass
class FrequencyPoint:
    """The pathway's response at ``frequency`` (Hz): measured gain and phase (degrees, negative = lag) of the
    fitted sinusoid, beside the analytic H(f); ``gain_se`` is the spike noise's standard error of the gain
    (0 in rate mode), the phase's is gain_se / gain radians."""

    frequency: float
    gain: float
    phase_deg: float
    gain_analytic: float
    phase_analytic_deg: float
    gain_se: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_sine(times: np.ndarray, y: np.ndarray, frequency: float) -> tuple[float, float]:
    """(amplitude, phase in degrees) of the least-squares fit y ~ A sin(2 pi f t + phi) + c."""
    w = 2 * math.pi * frequency
    X = np.stack([np.sin(w * times), np.cos(w * times), np.ones_like(times)], axis=1)
    a, b, _ = np.linalg.lstsq(X, y, rcond=None)[0]
    return float(math.hypot(a, b)), math.degrees(math.atan2(b, a))
