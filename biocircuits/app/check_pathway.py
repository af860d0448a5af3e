"""``biocircuits check-pathway RUN_DIR --layer NAME``: take real error vectors from a validation batch through a
trained network's feedback pathway, simulate the layer's pathway in Brian2, print and save the report.

``--waveform`` picks the error stream (patterns: held; recorded: successive validation samples' errors, each held
``--hold``; step; sine: the frequency response at ``--frequency`` F1,F2,...; ou: ``--tau-corr``); ``--chain`` adds
lower layers (top first) with the forward derivative gate f'(a) between them, checked against torch;
``--calibrate SPEC.yaml`` writes the run's constraint spec with the ``phases:`` noise of a spiking pathway of
``--rate`` r0 and ``--window`` T (validated like any spec)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from biocircuits.config.constraints import Constraints
from biocircuits.errors import ConfigError
from biocircuits.feedback.layers import FeedbackLayer
from biocircuits.train.restore import load_run
from biocircuits.train.run_folder import RunFolder

__all__ = ["check_run", "layer_errors", "layer_gates", "plot_frequency", "plot_report", "plot_tracking"]


def layer_errors(model: nn.Module, layer: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The error dL/dy at ``layer``'s output for each sample, delivered by the network's own feedback rules
    (shape (samples, out); a conv layer's error is taken at the centre output location)."""
    captured: dict[str, Tensor] = {}

    def hook(mod: nn.Module, args: tuple, out: Tensor) -> Tensor:
        captured["y"] = out
        return out.clone()

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y, reduction="sum")
            (delta,) = torch.autograd.grad(loss, captured["y"])
    finally:
        handle.remove()
    if delta.dim() > 2:
        centre = tuple(s // 2 for s in delta.shape[2:])
        delta = delta[(slice(None), slice(None), *centre)]
    return delta.detach()


def layer_gates(model: nn.Module, lower: nn.Module, upper: nn.Module, x: Tensor) -> Tensor:
    """f'(a) between two linear layers: a = ``lower``'s output, h = ``upper``'s input, d h_j / d a_j per sample
    (samples, n); the map a -> h must be elementwise (an activation function)."""
    seen: dict[str, Tensor] = {}

    def keep_out(mod: nn.Module, args: tuple, out: Tensor) -> None:
        seen["a"] = out

    def keep_in(mod: nn.Module, args: tuple) -> None:
        seen["h"] = args[0]

    handles = [lower.register_forward_hook(keep_out), upper.register_forward_pre_hook(keep_in)]
    try:
        with torch.enable_grad():
            model(x)
            a, h = seen["a"], seen["h"]
            if a.shape != h.shape or a.dim() != 2:
                raise ConfigError("--chain layers must be linear layers joined by an elementwise activation",
                                  key="--chain", expected=f"the upper layer's input shaped like {tuple(a.shape)}",
                                  given=tuple(h.shape), suggestion="chain consecutive Linear layers of an MLP")
            (gate,) = torch.autograd.grad(h.sum(), a)
    finally:
        for handle in handles:
            handle.remove()
    return gate.detach()


def _layer(modules: dict[str, nn.Module], name: str, key: str) -> nn.Module:
    layer = modules.get(name)
    if not isinstance(layer, FeedbackLayer):
        names = [n for n, m in modules.items() if isinstance(m, FeedbackLayer)]
        raise ConfigError("no converted layer of that name in the run's model", key=key, given=name,
                          suggestion="layers: " + ", ".join(difflib.get_close_matches(name, names, 5, 0.0)))
    return layer


def _units(bridge: Any, value: float | None, unit: str) -> Any:
    return None if value is None else value * getattr(bridge.b2, unit)


def check_run(run_dir: str | Path, layer_name: str, mode: str = "spiking", patterns: int = 4,
              duration: float | None = None, dale: bool = False, waveform: str = "patterns",
              frequency: list[float] | None = None, tau_corr: float | None = None, hold: float | None = None,
              chain: list[str] | None = None, calibrate: str | Path | None = None, rate: float = 200.0,
              window: float = 0.05) -> Any:
    """Check ``layer_name`` of the run in ``run_dir``; writes ``pathway_<layer>_<mode>[_dale][_<waveform>]``
    ``.json`` and ``.png`` (and the calibrated spec at ``calibrate``). Returns the report (anything with
    ``summary()``)."""
    from biocircuits.bridges import brian2 as bridge  # needs the optional Brian2 (the ``spiking`` extra)
    try:
        make_stream = bridge.WAVEFORMS.get(waveform)
    except ConfigError as err:
        raise ConfigError(err.message, key="--waveform", given=waveform, expected="one of " +
                          ", ".join(bridge.WAVEFORMS.names()), suggestion="e.g. --waveform sine") from None
    folder = RunFolder(run_dir)
    exp, model, data = load_run(folder.path)
    modules = dict(model.named_modules())
    layer = _layer(modules, layer_name, "--layer")
    n = min(patterns, len(data.val))
    xs, ys = zip(*(data.val[i] for i in range(n)), strict=True)
    x, y = torch.stack(xs), torch.as_tensor(ys)
    errors = layer_errors(model, layer, x, y)
    stem = folder.pathway(layer_name, mode, dale)
    title = f"{folder.name}: {layer_name}"
    sec = _units(bridge, duration, "second")
    if calibrate is not None:
        cal = bridge.calibrate_spikes(layer, errors, rate=rate * bridge.b2.Hz, window=window * bridge.b2.second,
                                      dale=dale)
        spec = exp.resolved_constraints().model_dump(mode="json")
        spec["phases"] = cal.phases("noise")
        Constraints.from_dict(spec, file=str(calibrate))  # the written spec must load
        Path(calibrate).write_text(cal.header() + yaml.safe_dump(spec, sort_keys=False))
        return cal
    if chain:
        layers = [layer] + [_layer(modules, name, "--chain") for name in chain]
        gates = [layer_gates(model, lo, up, x) for up, lo in zip(layers[:-1], layers[1:], strict=True)]
        report = bridge.check_chain(layers, errors, gates, mode, duration=sec)
        stem = stem.with_name(stem.name + "_chain")
    elif waveform == "patterns":
        report = bridge.check_pathway(layer, errors, mode, dale=dale, duration=sec)
        plot_report(report, stem.with_suffix(".png"), title=title)
    elif waveform == "sine":
        freqs = frequency or [2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        points = bridge.frequency_response(layer, errors[0], freqs * bridge.b2.Hz, mode, dale=dale)
        report = FrequencySweep(mode, dale, points)
        stem = stem.with_name(stem.name + "_sine")
        plot_frequency(points, stem.with_suffix(".png"), title=title)
    else:
        opts: dict[str, Any] = {"dt": 0.1 * bridge.b2.ms}
        if waveform in ("step", "ou") and sec is not None:
            opts["duration"] = sec
        if waveform == "ou" and tau_corr is not None:
            opts["tau_corr"] = tau_corr * bridge.b2.second
        if waveform == "recorded" and hold is not None:
            opts["hold"] = hold * bridge.b2.second
        stream = make_stream(errors.double().numpy(), **opts)
        report = bridge.track(layer, stream, mode, dale=dale)
        stem = stem.with_name(f"{stem.name}_{waveform}")
        plot_tracking(report, stem.with_suffix(".png"), title=title)
    data_out = report.to_dict() if hasattr(report, "to_dict") else {}
    stem.with_suffix(".json").write_text(json.dumps(data_out, indent=2, default=float) + "\n")
    return report


class FrequencySweep:
    """The frequency response as a report: ``points`` (:class:`~biocircuits.bridges.brian2.FrequencyPoint`)."""

    def __init__(self, mode: str, dale: bool, points: list) -> None:
        self.mode, self.dale, self.points = mode, dale, points

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "dale": self.dale, "points": [p.to_dict() for p in self.points]}

    def summary(self) -> str:
        lines = [f"{self.mode} pathway{' (Dale)' if self.dale else ''}: frequency response (analytic low-pass)"]
        for p in self.points:
            se = f" +- {p.gain_se:.3f}" if p.gain_se else ""
            lines.append(f"  {p.frequency:7.2f} Hz: gain {p.gain:.4f}{se} (analytic {p.gain_analytic:.4f})  "
                         f"phase {p.phase_deg:7.2f} deg (analytic {p.phase_analytic_deg:7.2f})")
        return "\n".join(lines)


def _figure(ncols: int = 1, size: tuple[float, float] = (5.5, 5)) -> tuple[Any, Any]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(1, ncols, figsize=size)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_report(report: Any, path: Path, title: str = "") -> Path:
    """Simulated against analytic B^T e, one colour per error pattern, with the identity line."""
    fig, ax = _figure()
    lo = hi = 0.0
    for i, (sim, ana, res) in enumerate(zip(report.simulated, report.analytic, report.patterns, strict=True)):
        ax.scatter(ana, sim, s=10, alpha=0.7, label=f"pattern {i}: cos {res.cosine:.3f}")
        lo, hi = min(lo, min(ana), min(sim)), max(hi, max(ana), max(sim))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="identity")
    ax.set(xlabel="analytic feedback signal B^T e (a.u.)", ylabel="simulated signal, rescaled (a.u.)",
           title=f"{title}\n{report.mode}{' + Dale' if report.dale else ''}, {report.duration_s:g} s per pattern")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_frequency(points: list, path: Path, title: str = "") -> Path:
    """Gain and phase against frequency (log axis), measured (dots, spike-noise error bars) and analytic."""
    fig, (gain, phase) = _figure(2, (10, 4))
    f = [p.frequency for p in points]
    gain.errorbar(f, [p.gain for p in points], yerr=[p.gain_se for p in points], fmt="o", label="simulated")
    gain.plot(f, [p.gain_analytic for p in points], "-", label="analytic low-pass")
    phase.plot(f, [p.phase_deg for p in points], "o", label="simulated")
    phase.plot(f, [p.phase_analytic_deg for p in points], "-", label="analytic low-pass")
    gain.set(xscale="log", yscale="log", xlabel="frequency (Hz)", ylabel="gain |H(f)|", title=title)
    phase.set(xscale="log", xlabel="frequency (Hz)", ylabel="phase (degrees)")
    for ax in (gain, phase):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_tracking(report: Any, path: Path, title: str = "") -> Path:
    """Per-bin cosine between the readout and B^T e(t), measured and analytic (the low-pass alone)."""
    fig, ax = _figure(1, (7, 4))
    tr = report.tracking
    t = [(i + 0.5) * tr.bin_s for i in range(len(tr.cosine))]
    ax.plot(t, tr.cosine, ".-", label=f"simulated (mean {tr.mean_cosine:.3f})")
    ax.plot(t, tr.cosine_predicted, "-", label=f"analytic low-pass (mean {tr.mean_cosine_predicted:.3f})")
    ax.set(xlabel="bin start after settling (s)", ylabel="cos(readout, B^T e(t))",
           title=f"{title}\n{report.trace.mode}{' + Dale' if report.trace.dale else ''}, {report.stream} stream")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
