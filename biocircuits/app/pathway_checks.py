"""The checks ``biocircuits check-pathway`` runs, one registered class each
([`CHECKS`][biocircuits.app.pathway_checks.CHECKS]): the command-line options it takes, held on the instance with Brian2
units, its analytic reference, and the files it writes.

A check that is asked for an option it does not take refuses it
([`PathwayCheck.refuse`][biocircuits.app.pathway_checks.PathwayCheck.refuse]): no option is ever ignored. Adding a check
is one class here. Imported only when a check runs (it imports Brian2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from torch import Tensor, nn

from biocircuits.bridges import brian2 as bridge
from biocircuits.bridges.brian2._backend import check_units, seconds
from biocircuits.bridges.brian2.streams import HZ, MS, SECOND
from biocircuits.config.constraints import Constraints
from biocircuits.core.atomic import atomic_write_text
from biocircuits.core.registry import Registry
from biocircuits.errors import ConfigError

from .pathway_plots import plot_frequency, plot_report, plot_tracking

CHECKS: Registry = Registry("pathway check")


def flag(option: str) -> str:
    """The command-line flag of a request field: ``tau_corr`` -> ``--tau-corr``."""
    return "--" + option.replace("_", "-")


@dataclass
class Context:
    """What a check runs on: the ``layer`` and its ``errors`` (patterns, out) from the validation inputs ``x``,
    the ``model`` and its named ``modules`` (the chain's lower layers), the pathway ``mode`` name and ``dale``."""

    model: nn.Module
    modules: dict[str, nn.Module]
    layer: nn.Module
    x: Tensor
    errors: Tensor
    mode: str
    dale: bool
    exp: Any = None


class PathwayCheck:
    """Base class. ``takes``: the request's options the check reads (any other given option is refused, with
    ``hints[option]`` as the suggestion); ``patterns``: how many validation errors it needs; ``suffix``: of the
    report files; ``reference``: what the simulation is compared with (the analytic reference)."""

    name: ClassVar[str]
    takes: ClassVar[frozenset[str]] = frozenset({"mode", "dale"})
    hints: ClassVar[dict[str, str]] = {}
    default_patterns: ClassVar[int] = 4
    suffix: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    patterns: int = 4

    @classmethod
    def refuse(cls, given: dict[str, Any]) -> None:
        """A ConfigError for the first given option this check does not take (options: name -> value)."""
        for option, value in given.items():
            if option not in cls.takes:
                takes = ", ".join(flag(o) for o in sorted(cls.takes))
                raise ConfigError(
                    f"{flag(option)} has no effect on the {cls.name} check",
                    key=flag(option),
                    expected=f"the options of this check: {takes}",
                    given=value,
                    suggestion=cls.hints.get(option, f"drop {flag(option)}"),
                )

    @classmethod
    def from_request(cls, request: Any) -> PathwayCheck:
        """The check with the request's options converted to units (the request's numbers are seconds/Hz)."""
        raise NotImplementedError

    def run(self, ctx: Context) -> Any:
        """Simulate and return the report (anything with ``summary()`` and ``to_dict()``)."""
        raise NotImplementedError

    def plot(self, report: Any, path: Path, title: str) -> None:
        """Write the report's figure (none by default)."""


def _seconds(value: float | None) -> Any:
    return None if value is None else value * SECOND


@CHECKS.register
class HeldPatterns(PathwayCheck):
    """Each validation error held for ``duration`` (default 0.2 s rate, 0.5 s spiking), the readout averaged
    after the settle, against B^T e (and backprop's W^T e for the angle)."""

    name = "patterns"
    takes = frozenset({"mode", "dale", "patterns", "duration"})
    reference = "B^T e per held pattern"

    @check_units(duration=SECOND)
    def __init__(self, patterns: int = 4, duration: Any = None) -> None:
        self.patterns, self.duration = patterns, duration

    @classmethod
    def from_request(cls, request: Any) -> HeldPatterns:
        return cls(request.patterns or cls.default_patterns, _seconds(request.duration))

    def run(self, ctx: Context) -> Any:
        return bridge.check_pathway(ctx.layer, ctx.errors, ctx.mode, dale=ctx.dale, duration=self.duration)

    def plot(self, report: Any, path: Path, title: str) -> None:
        plot_report(report, path, title=title)


class FrequencySweep:
    """The frequency response as a report: ``points``
    ([`FrequencyPoint`][biocircuits.bridges.brian2.metrics.FrequencyPoint])."""

    def __init__(self, mode: str, dale: bool, points: list) -> None:
        self.mode, self.dale, self.points = mode, dale, points

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "dale": self.dale, "points": [p.to_dict() for p in self.points]}

    def summary(self) -> str:
        lines = [f"{self.mode} pathway{' (Dale)' if self.dale else ''}: frequency response (analytic low-pass)"]
        for p in self.points:
            se = f" +- {p.gain_se:.3f}" if p.gain_se else ""
            lines.append(
                f"  {p.frequency:7.2f} Hz: gain {p.gain:.4f}{se} (analytic {p.gain_analytic:.4f})  "
                f"phase {p.phase_deg:7.2f} deg (analytic {p.phase_analytic_deg:7.2f})"
            )
        return "\n".join(lines)


@CHECKS.register
class SineResponse(PathwayCheck):
    """e(t) = d sin(2 pi f t) at each of ``frequencies`` (d the first validation error), gain and phase of the
    readout fitted over whole cycles lasting at least ``duration`` (default 0.25 s), against the analytic
    H(f) = 1 / (1 + 2 pi i f tau) (with relays, H(f) (1 + H_r(f) e^{-i pi f dt}) / 2)."""

    name = "sine"
    takes = frozenset({"mode", "dale", "frequency", "duration", "waveform"})
    hints = {"patterns": "the sine drives one direction, the first validation error"}
    suffix = "_sine"
    reference = "the analytic low-pass H(f)"

    @check_units(frequencies=HZ, duration=SECOND)
    def __init__(self, frequencies: Any = None, duration: Any = 0.25 * SECOND) -> None:
        self.frequencies = frequencies if frequencies is not None else [2, 5, 10, 20, 50, 100] * HZ
        self.duration, self.patterns = duration, 1

    @classmethod
    def from_request(cls, request: Any) -> SineResponse:
        freqs = list(request.frequency) * HZ if request.frequency else None
        return cls(freqs, _seconds(request.duration) if request.duration is not None else 0.25 * SECOND)

    def run(self, ctx: Context) -> FrequencySweep:
        points = bridge.frequency_response(
            ctx.layer, ctx.errors[0], self.frequencies, ctx.mode, dale=ctx.dale, min_fit=seconds(self.duration)
        )
        return FrequencySweep(ctx.mode, ctx.dale, points)

    def plot(self, report: Any, path: Path, title: str) -> None:
        plot_frequency(report.points, path, title=title)


class StreamCheck(PathwayCheck):
    """A stream e(t) built from the validation errors by the bridge's waveform ``name``, tracked in bins, against
    the analytic mean readout (the discrete low-pass of B^T e(t), `PathwayMode.predict`)."""

    reference = "the analytic low-pass of B^T e(t)"
    min_bins: ClassVar[int] = 2

    def stream_options(self) -> dict[str, Any]:
        return {}

    def run(self, ctx: Context) -> Any:
        mode = bridge.make_mode(ctx.mode)
        stream = bridge.WAVEFORMS.get(self.name)(ctx.errors.double().numpy(), dt=mode.dt, **self.stream_options())
        bin_steps = stream.hold or int(round(0.01 / mode.dt_s))
        bins = (stream.steps - int(round(5 * mode.tau_s / mode.dt_s))) // bin_steps
        if bins < self.min_bins:
            raise ConfigError(
                f"the {self.name} stream lasts {stream.duration:g} s: {max(bins, 0)} tracking bins of "
                f"{bin_steps * mode.dt_s * 1e3:g} ms after the {5 * mode.tau_s * 1e3:g} ms settle",
                key=flag(self.lengthened_by),
                expected=f"at least {self.min_bins} bins",
                given=getattr(self, self.lengthened_by, None),
                suggestion=f"a larger {flag(self.lengthened_by)}",
            )
        return bridge.track(ctx.layer, stream, mode, dale=ctx.dale)

    def plot(self, report: Any, path: Path, title: str) -> None:
        plot_tracking(report, path, title=title)


@CHECKS.register
class RecordedStream(StreamCheck):
    """Successive validation errors (``patterns``, default 32), each held ``hold`` (default 20 ms): one bin per
    error, as a training run's recorded errors would be."""

    name = "recorded"
    takes = frozenset({"mode", "dale", "patterns", "hold", "waveform"})
    hints = {"duration": "the recorded stream lasts --patterns x --hold"}
    default_patterns = 32
    suffix = "_recorded"
    lengthened_by = "patterns"

    @check_units(hold=SECOND)
    def __init__(self, patterns: int = 32, hold: Any = 20 * MS) -> None:
        self.patterns, self.hold = patterns, hold

    @classmethod
    def from_request(cls, request: Any) -> RecordedStream:
        return cls(request.patterns or cls.default_patterns, _seconds(request.hold) or 20 * MS)

    def stream_options(self) -> dict[str, Any]:
        return {"hold": self.hold}


@CHECKS.register
class StepStream(StreamCheck):
    """e(t) = 0 before a 20 ms onset, the first validation error from then on, for ``duration`` (default 0.2 s)."""

    name = "step"
    takes = frozenset({"mode", "dale", "duration", "waveform"})
    hints = {"patterns": "the step holds one error, the first validation error"}
    suffix = "_step"
    lengthened_by = "duration"

    @check_units(duration=SECOND)
    def __init__(self, duration: Any = 200 * MS) -> None:
        self.duration, self.patterns = duration, 1

    @classmethod
    def from_request(cls, request: Any) -> StepStream:
        return cls(_seconds(request.duration) or 200 * MS)

    def stream_options(self) -> dict[str, Any]:
        return {"duration": self.duration}


@CHECKS.register
class OUStream(StreamCheck):
    """Ornstein-Uhlenbeck errors of correlation time ``tau_corr`` (default 20 ms) for ``duration`` (default 1 s),
    each unit's std that of the ``patterns`` validation errors (their RMS for one)."""

    name = "ou"
    takes = frozenset({"mode", "dale", "patterns", "duration", "tau_corr", "waveform"})
    suffix = "_ou"
    lengthened_by = "duration"

    @check_units(duration=SECOND, tau_corr=SECOND)
    def __init__(self, patterns: int = 4, duration: Any = 1 * SECOND, tau_corr: Any = 20 * MS) -> None:
        self.patterns, self.duration, self.tau_corr = patterns, duration, tau_corr

    @classmethod
    def from_request(cls, request: Any) -> OUStream:
        return cls(
            request.patterns or cls.default_patterns,
            _seconds(request.duration) or 1 * SECOND,
            _seconds(request.tau_corr) or 20 * MS,
        )

    def stream_options(self) -> dict[str, Any]:
        return {"duration": self.duration, "tau_corr": self.tau_corr}


@CHECKS.register
class GatedChain(PathwayCheck):
    """The layer and the ``lower`` layers (top first), gated by the forward derivative f'(a) between them, each
    validation error held ``duration``, against torch's B_2^T (f'(a) * B_3^T e). No Dale relays in the chain."""

    name = "chain"
    takes = frozenset({"mode", "patterns", "duration", "chain"})
    hints = {"dale": "the chain has no Dale relays: check one layer with --dale"}
    suffix = "_chain"
    reference = "torch's gated chain B_2^T (f'(a) * B_3^T e)"

    @check_units(duration=SECOND)
    def __init__(self, lower: list[str], patterns: int = 4, duration: Any = None) -> None:
        self.lower, self.patterns, self.duration = list(lower), patterns, duration

    @classmethod
    def from_request(cls, request: Any) -> GatedChain:
        return cls(request.chain, request.patterns or cls.default_patterns, _seconds(request.duration))

    def run(self, ctx: Context) -> Any:
        from .check_pathway import converted_layer, layer_gates

        layers = [ctx.layer] + [converted_layer(ctx.modules, name, "--chain") for name in self.lower]
        gates = [layer_gates(ctx.model, lo, up, ctx.x) for up, lo in zip(layers[:-1], layers[1:], strict=True)]
        return bridge.check_chain(layers, ctx.errors, gates, ctx.mode, duration=self.duration)


@CHECKS.register
class SpikeBudget(PathwayCheck):
    """``--calibrate SPEC.yaml``: the spiking pathway's measured noise for baseline ``rate`` r0 (default 200 Hz)
    and window ``window`` T (default 50 ms) as ``error_noise`` (the whole measured variance, once), written into
    the run's constraint spec at ``path``; the analytic sigma beside it
    ([`calibration`][biocircuits.bridges.brian2.calibration]). Spiking mode only."""

    name = "calibrate"
    takes = frozenset({"mode", "dale", "patterns", "calibrate", "rate", "window"})
    hints = {"duration": "the calibration reads --window after the settle"}
    reference = "the analytic spike-count variance"

    @check_units(rate=HZ, window=SECOND)
    def __init__(self, path: str | Path, patterns: int = 4, rate: Any = 200 * HZ, window: Any = 50 * MS) -> None:
        self.path, self.patterns, self.rate, self.window = Path(path), patterns, rate, window

    @classmethod
    def from_request(cls, request: Any) -> SpikeBudget:
        if request.mode not in (None, "spiking"):
            raise ConfigError(
                "--calibrate measures the spiking pathway's noise",
                key="--mode",
                expected="spiking (the default)",
                given=request.mode,
                suggestion="drop --mode",
            )
        return cls(
            request.calibrate,
            request.patterns or cls.default_patterns,
            request.rate * HZ if request.rate is not None else 200 * HZ,
            _seconds(request.window) or 50 * MS,
        )

    def run(self, ctx: Context) -> Any:
        cal = bridge.calibrate_spikes(ctx.layer, ctx.errors, rate=self.rate, window=self.window, dale=ctx.dale)
        spec = ctx.exp.resolved_constraints().model_dump(mode="json")
        spec["phases"] = cal.phases("noise")
        Constraints.from_dict(spec, file=str(self.path))  # the written spec must load
        atomic_write_text(self.path, cal.header() + yaml.safe_dump(spec, sort_keys=False))
        return cal
