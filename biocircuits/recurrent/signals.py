"""The learning signal of one trial in time (the maths of
[`biocircuits.recurrent.phases`][biocircuits.recurrent.phases]): each population's signal late, noisy, quantised and
filtered step by step
([`SignalInTime`][biocircuits.recurrent.signals.SignalInTime]), the eligibility it meets
([`Pairing`][biocircuits.recurrent.signals.Pairing]), and the signals left in the units (interference)."""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from biocircuits.phases.transforms import quantize

from .traces import Eligibility, Factored, PostMajor


class TimeOptions(BaseModel):
    """The ``phases:`` settings as they act in time (see
    [`biocircuits.recurrent.phases`][biocircuits.recurrent.phases])."""

    model_config = ConfigDict(extra="forbid")
    delay: int = Field(0, ge=0, description="d: the signal of step t - d arrives at step t.")
    backward_state: Literal["stored", "current", "trace"] = "stored"
    trace_decay: float = Field(0.0, ge=0.0, lt=1.0)
    sigma: float = Field(0.0, ge=0.0, description="Noise-to-signal ratio of each step's signal.")
    spikes: int = Field(0, ge=0, description="Spike-count coding of each step's signal; 0 is off.")
    tau: float = Field(0.0, ge=0.0, description="Time constant, in steps, of the signal's low-pass filter.")
    gamma: float = Field(0.0, description="Weight of the signal of step t added to the units' activity at t + 1.")
    scale: Literal["activity", "error"] = "activity"


# phases key -> (TimeOptions field, the transform option it reads)


class SignalInTime:
    """One population's signal within one trial: ``__call__(s_t)`` returns f_t, what arrives at step t (late,
    noise, quantisation, filter; module docstring), with the generator ``generator`` drawing the step's noise."""

    def __init__(self, options: TimeOptions, generator: torch.Generator) -> None:
        self.options, self.generator = options, generator
        self.queue: deque[Tensor] = deque()
        self.filtered: Tensor | None = None

    def __call__(self, signal: Tensor) -> Tensor:
        o = self.options
        if o.delay:
            self.queue.append(signal)
            signal = self.queue.popleft() if len(self.queue) > o.delay else torch.zeros_like(signal)
        if o.sigma:
            rms = signal.pow(2).mean().sqrt()
            xi = torch.randn(signal.shape, generator=self.generator, dtype=signal.dtype, device=signal.device)
            signal = signal + o.sigma * rms * xi
        if o.spikes:
            signal = quantize(signal, o.spikes, self.generator)
        if o.tau:
            a = math.exp(-1.0 / o.tau)
            self.filtered = (1.0 - a) * signal if self.filtered is None else a * self.filtered + (1.0 - a) * signal
            signal = self.filtered
        return signal


def _copy(e: Eligibility) -> Eligibility:
    """A trace that later steps may not change in place (RFLO's ``p`` is updated in place)."""
    return PostMajor(e.p.clone()) if isinstance(e, PostMajor) else e


def _lowpass(kept: Eligibility | None, e: Eligibility, lam: float) -> Eligibility:
    """ebar_t = lam ebar_{t-1} + (1 - lam) e_t (ebar_{-1} = 0), kept in RFLO's layout or in full."""
    if isinstance(e, PostMajor):
        return PostMajor((1.0 - lam) * e.p if kept is None else lam * kept.p + (1.0 - lam) * e.p)
    full = e.full() if isinstance(e, Factored) else e
    return (1.0 - lam) * full if kept is None else lam * kept + (1.0 - lam) * full


class Pairing:
    """What one population's late signal meets: ``__call__(e_t)`` returns the trace to pair with the signal arriving
    at step t: e_{t-d} (stored), e_t (current) or ebar_t (trace); a zero signal meets e_t while the queue fills."""

    def __init__(self, options: TimeOptions) -> None:
        self.options = options
        self.kept: deque[Eligibility] = deque()
        self.bar: Eligibility | None = None

    def __call__(self, e: Eligibility) -> Eligibility:
        o = self.options
        if o.backward_state == "trace":
            self.bar = _lowpass(self.bar, e, o.trace_decay)
            return self.bar
        if o.backward_state == "stored" and o.delay:
            self.kept.append(_copy(e))
            return self.kept.popleft() if len(self.kept) > o.delay else e
        return e


class TrialSignals:
    """The signals of one online trial: the readout's error and the hidden units' learning signal, each through its
    own [`SignalInTime`][biocircuits.recurrent.signals.SignalInTime] and paired by its own
    [`Pairing`][biocircuits.recurrent.signals.Pairing] (one per matrix learning from L_t: W_in, W_rec)."""

    def __init__(self, options: TimeOptions, readout: torch.Generator, hidden: torch.Generator, matrices: int) -> None:
        self.readout_signal, self.readout_pairing = SignalInTime(options, readout), Pairing(options)
        self.hidden_signal = SignalInTime(options, hidden)
        self.hidden_pairings = [Pairing(options) for _ in range(matrices)]

        self.options = options
        self.left_readout: Tensor | None = None
        self.left_hidden: Tensor | None = None

    def readout(self, err: Tensor, activity: Tensor) -> tuple[Tensor, Tensor]:
        """(err'_t [B, n_out], the activity y [B, N] it meets) at step t."""
        self.left_readout = self.readout_signal(err)
        return self.left_readout, self.readout_pairing(activity)

    def hidden(self, signal: Tensor, traces: list[Eligibility]) -> tuple[Tensor, list[Eligibility]]:
        """(L'_t [B, N], the trace of each matrix it meets) at step t."""
        self.left_hidden = self.hidden_signal(signal)
        return self.left_hidden, [p(e) for p, e in zip(self.hidden_pairings, traces, strict=True)]

    def interfering(self) -> TrialSignals | None:
        """Itself when the signals left in the units add to their activity (``interference``), else None."""
        return self if self.options.gamma else None

    def state(self, x: Tensor) -> Tensor:
        """x'_(t+1) = x_(t+1) + the hidden units' signal L'_t at its scale (none at the first step)."""
        return _interfere(x, self.left_hidden, self.options)

    def logits(self, z: Tensor) -> Tensor:
        """z'_(t+1) = z_(t+1) + the readout's error err'_t at its scale."""
        return _interfere(z, self.left_readout, self.options)


def _interfere(y: Tensor, signal: Tensor | None, options: TimeOptions) -> Tensor:
    """y + gamma rms(y[b]) / rms(s[b]) s[b] (``scale: activity``; 0 where s[b] = 0) or y + gamma S s (``error``, S
    the trial's batch), per sample b, rms over the units; y itself while no signal has arrived."""
    if signal is None:
        return y
    if options.scale == "error":
        return y + options.gamma * y.shape[0] * signal
    size, rms = signal.pow(2).mean(1, keepdim=True).sqrt(), y.pow(2).mean(1, keepdim=True).sqrt()
    scale = torch.where(size > 0, options.gamma * rms / size.clamp(min=1e-30), torch.zeros_like(size))
    return y + scale * signal
