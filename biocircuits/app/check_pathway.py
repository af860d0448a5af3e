"""``biocircuits check-pathway RUN_DIR --layer NAME``: take real error vectors from a validation batch through a
trained network's feedback pathway, simulate the layer's pathway in Brian2, print and save the report.

A [`CheckRequest`][biocircuits.app.check_pathway.CheckRequest] holds the command's options; it picks one check
([`pathway_checks`][biocircuits.app.pathway_checks]): ``--waveform`` (patterns: held; recorded: successive validation
errors, each held ``--hold``; step; sine: the frequency response at ``--frequency`` F1,F2,...; ou: ``--tau-corr``),
``--chain`` (lower layers, top first, with the forward derivative gate f'(a) between them, checked against torch) or
``--calibrate SPEC.yaml`` (the run's constraint spec with the ``phases:`` noise of a spiking pathway of ``--rate`` r0
and ``--window`` T). An option the chosen check does not take is refused (exit 2), never ignored."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.atomic import atomic_write_text
from biocircuits.errors import ConfigError
from biocircuits.feedback.layers import FeedbackLayer
from biocircuits.probes.errors import layer_errors
from biocircuits.train.restore import load_run
from biocircuits.train.run_folder import RunFolder

from .pathway_plots import plot_frequency, plot_report, plot_tracking

__all__ = [
    "CheckOutcome",
    "CheckRequest",
    "check_run",
    "converted_layer",
    "layer_errors",
    "layer_gates",
    "plot_frequency",
    "plot_report",
    "plot_tracking",
    "rounding_level",
]


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
                raise ConfigError(
                    "--chain layers must be linear layers joined by an elementwise activation",
                    key="--chain",
                    expected=f"the upper layer's input shaped like {tuple(a.shape)}",
                    given=tuple(h.shape),
                    suggestion="chain consecutive Linear layers of an MLP",
                )
            (gate,) = torch.autograd.grad(h.sum(), a)
    finally:
        for handle in handles:
            handle.remove()
    return gate.detach()


def rounding_level(errors: Tensor, dtype: torch.dtype = torch.float32) -> list[int]:
    """Patterns whose largest error is below 16 eps of ``dtype`` (1.9e-6 in float32): at the logits the error is
    p - y with |p - y| <= 1, so these are within a few roundings of zero (a saturated softmax rounds p to 1 and
    the error to 0 or noise) and their cosines say nothing about the pathway."""
    floor = 16 * torch.finfo(dtype).eps
    peaks = errors.abs().reshape(len(errors), -1).amax(dim=1)
    return [i for i, peak in enumerate(peaks.tolist()) if not math.isfinite(peak) or peak < floor]


def converted_layer(modules: dict[str, nn.Module], name: str, key: str) -> nn.Module:
    """The converted (feedback) layer called ``name``; a ConfigError naming the closest converted layers."""
    layer = modules.get(name)
    if not isinstance(layer, FeedbackLayer):
        names = [n for n, m in modules.items() if isinstance(m, FeedbackLayer)]
        what = (
            f"{name} is a {type(layer).__name__}, not a converted layer"
            if layer is not None
            else "no converted layer of that name in the run's model"
        )
        raise ConfigError(
            what,
            key=key,
            given=name,
            expected="a converted layer: " + ", ".join(names),
            suggestion="closest: " + ", ".join(difflib.get_close_matches(name, names, 5, 0.0)),
        )
    return layer


@dataclass(frozen=True)
class CheckRequest:
    """The command's options: numbers in seconds (``duration``, ``hold``, ``tau_corr``, ``window``) and hertz
    (``frequency``, ``rate``); None means not given (the check's default).
    [`check`][biocircuits.app.check_pathway.CheckRequest.check] picks the check and refuses every given option it does
    not take."""

    run_dir: Path
    layer: str
    mode: str | None = None
    dale: bool = False
    patterns: int | None = None
    duration: float | None = None
    waveform: str | None = None
    frequency: tuple[float, ...] | None = None
    tau_corr: float | None = None
    hold: float | None = None
    chain: tuple[str, ...] | None = None
    calibrate: Path | None = None
    rate: float | None = None
    window: float | None = None

    @classmethod
    def from_args(cls, args: Any) -> CheckRequest:
        """From the parsed command line (an ``argparse.Namespace`` with these field names)."""
        names = [f.name for f in dataclasses.fields(cls)]
        values = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
        for n in ("frequency", "chain"):
            if values.get(n) is not None:
                values[n] = tuple(values[n])
        return cls(**values)

    def given(self) -> dict[str, Any]:
        """The options given (not None, ``dale`` only when set, ``waveform`` only when not ``patterns``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)[2:]}
        return {
            k: v
            for k, v in out.items()
            if v is not None and v is not False and not (k == "waveform" and v == "patterns")
        }

    def check(self) -> Any:
        """The [`PathwayCheck`][biocircuits.app.pathway_checks.PathwayCheck] this request asks for, built from its
        options."""
        from .pathway_checks import CHECKS, bridge  # imports Brian2

        if self.waveform is not None and self.waveform not in bridge.WAVEFORMS:
            raise ConfigError(
                "unknown waveform",
                key="--waveform",
                given=self.waveform,
                expected="one of " + ", ".join(bridge.WAVEFORMS.names()),
                suggestion="e.g. --waveform sine",
            )
        cls = CHECKS.get("calibrate" if self.calibrate else "chain" if self.chain else self.waveform or "patterns")
        cls.refuse(self.given())
        return cls.from_request(self)


@dataclass
class CheckOutcome:
    """A check's ``report`` with the files written and ``notes`` on the errors (e.g. at rounding level)."""

    check: str
    report: Any
    files: list[Path]
    notes: list[str]

    def summary(self) -> str:
        return "\n".join([self.report.summary(), *(f"note: {n}" for n in self.notes)])


def check_run(request: CheckRequest) -> CheckOutcome:
    """Run ``request`` on its run folder: ``pathway_<layer>_<mode>[_dale][<suffix>].json`` and ``.png`` (or the
    calibrated spec). Every given option acts or is refused (a ConfigError naming it)."""
    from .pathway_checks import Context

    check = request.check()
    folder = RunFolder(request.run_dir)
    exp, model, data = load_run(folder.path)
    modules = dict(model.named_modules())
    layer = converted_layer(modules, request.layer, "--layer")
    n = min(check.patterns, len(data.val))
    xs, ys = zip(*(data.val[i] for i in range(n)), strict=True)
    x = torch.stack(xs)
    errors = layer_errors(model, layer, x, torch.as_tensor(ys))
    mode = request.mode or "spiking"
    report = check.run(Context(model, modules, layer, x, errors, mode, request.dale, exp))
    notes = []
    if low := rounding_level(errors, next(model.parameters()).dtype):
        notes.append(
            f"patterns {low} have errors at rounding level (max |e| {errors[low].abs().max():.2g}, below "
            "16 float32 eps): the net is saturated on them, so their cosines and errors mean nothing"
        )
    if check.name == "calibrate":
        return CheckOutcome(check.name, report, [check.path], notes)
    stem = folder.pathway(request.layer, mode, request.dale)
    stem = stem.with_name(stem.name + check.suffix)
    data_out = report.to_dict() | {"check": check.name, "reference": check.reference, "notes": notes}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(data_out, indent=2, default=float) + "\n")
    check.plot(report, stem.with_suffix(".png"), f"{folder.name}: {request.layer}")
    files = [p for p in (stem.with_suffix(".json"), stem.with_suffix(".png")) if p.exists()]
    return CheckOutcome(check.name, report, files, notes)
