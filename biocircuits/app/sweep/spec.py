"""The sweep file (``biocircuits sweep SWEEP.yaml``) and its trials: an experiment, overrides for every trial, a grid
of ``axes`` and/or named ``variants``, and ``seeds``. Every trial's experiment is built and validated before any
trial starts, so a bad key fails at once naming the sweep file and the key."""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from biocircuits.config.constraints import Strict
from biocircuits.config.errors import from_validation_error
from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import load_with_includes, read_yaml, resolve_path
from biocircuits.errors import ConfigError, did_you_mean

from .search import DottedKey, Search, draw
from .worker import torch_threads

MAX_TRIALS = 10_000


class Resources(Strict):
    """``resources:`` what one trial holds: CPUs (its torch threads unless ``threads`` is set) and GPUs
    (fractions share one GPU between trials)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    cpu: float = Field(1.0, gt=0, le=1024)
    gpu: float = Field(0.0, ge=0, le=64)
    threads: int | None = Field(None, ge=1, le=1024)

    def torch_threads(self) -> int:
        return torch_threads(self.cpu, self.threads)


class Scheduler(Strict):
    """``scheduler:`` early stopping by Ray Tune's ASHA (Li et al. 2020) on the sweep's ``metric``, counted in
    evaluations: a trial is compared with the others after ``grace_period`` evaluations and then at every
    ``reduction_factor``-fold longer rung, and the worse ones stop (status ``stopped``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: Literal["asha"] = "asha"
    grace_period: int = Field(1, ge=1, le=10**9)
    reduction_factor: float = Field(3.0, gt=1.0, le=1000)
    max_evaluations: int = Field(10**9, ge=1, le=10**9)


class Variant(Strict):
    """One entry of ``variants:``: a name, the overrides (dotted keys) it sets, and ``columns``: extra cells of the
    report's ``table.md`` row for this variant (e.g. published figures to compare with), column title -> text."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
    set: dict[DottedKey, Any] = Field(default_factory=dict)
    columns: dict[Annotated[str, Field(min_length=1, max_length=120)], str | int | float] = Field(default_factory=dict)


class SweepSpec(Strict):
    """A sweep file. The trials are (variants x grid of ``axes``) x ``seeds``; ``baseline`` names the variant the
    summary's paired differences are taken against (default: the first); ``metric`` is the figure summarised."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    experiment: str
    set: dict[DottedKey, Any] = Field(default_factory=dict)
    axes: dict[DottedKey, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    variants: list[Variant] = Field(default_factory=list)
    seeds: Annotated[list[Annotated[int, Field(ge=0, lt=2**63)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0]
    )
    resources: Resources = Field(default_factory=Resources)
    baseline: str | None = None
    metric: str = Field("val_acc1", pattern=r"^(val_acc1|val_acc5|val_loss|best_val_acc1|best_val_loss)$")
    scheduler: Scheduler | None = None
    search: Search | None = None

    @model_validator(mode="before")
    @classmethod
    def _scheduler_by_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("scheduler"), str):
            return {**data, "scheduler": {"name": data["scheduler"]}}
        return data

    @model_validator(mode="after")
    def _distinct(self) -> SweepSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError("variant names repeat", key="variants", expected="distinct names", given=names)
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("seeds repeat", key="seeds", expected="distinct seeds", given=self.seeds)
        if "train.seed" in self.axes or "train.seed" in self.set or "name" in self.axes:
            raise ConfigError(
                "the sweep sets train.seed and name itself", key="axes", suggestion="list the seeds under seeds:"
            )
        if (
            self.search is not None
            and self.search.algorithm == "optuna"
            and (self.axes or self.variants or len(self.seeds) > 1)
        ):
            raise ConfigError(
                "an Optuna search runs one trial per sample: no axes, no variants, one seed",
                key="search.algorithm",
                given="optuna with "
                + ", ".join(
                    k
                    for k, on in (
                        ("axes", self.axes),
                        ("variants", self.variants),
                        (f"{len(self.seeds)} seeds", len(self.seeds) > 1),
                    )
                    if on
                ),
                suggestion="algorithm: random runs every sample for every seed and grid cell; or "
                "search at one seed, then sweep the best sample's settings over seeds",
            )
        return self


@dataclass
class Trial:
    """One run of the sweep: its folder name, variant label, axis values, seed and validated experiment."""

    id: str
    variant: str
    values: dict[str, Any]
    seed: int
    experiment: Experiment = field(repr=False)

    def record(self) -> dict[str, Any]:
        """What ``trial.json`` and the results rows say about the trial's place in the sweep."""
        return {"trial": self.id, "variant": self.variant, "values": self.values, "seed": self.seed}


def load_sweep(
    path: str | Path, sets: dict[str, Any] | None = None, only: list[str] | None = None
) -> tuple[SweepSpec, dict[str, Any]]:
    """Read and validate a sweep file, with ``sets`` added to its ``set:`` and only the variants named in ``only``
    (the command line's ``--set`` / ``--variants``); returns the spec and the effective mapping (recorded in
    ``sweep.json``, so a rerun continues only with the same options)."""
    data = narrow(read_yaml(path), sets, only, path)
    try:
        return SweepSpec.model_validate(data), data
    except ValidationError as err:
        raise from_validation_error(err, SweepSpec, str(path)) from None


def narrow(data: Any, sets: dict[str, Any] | None, only: list[str] | None, path: str | Path) -> Any:
    """The sweep file's mapping with ``sets`` over its ``set:`` and its ``variants:`` cut to ``only`` (in file
    order; the baseline dropped when it is not among them)."""
    if not isinstance(data, dict):
        return data
    data = copy.deepcopy(data)
    if sets:
        data["set"] = {**(data.get("set") or {}), **sets}
    if only:
        names = [v.get("name") for v in data.get("variants") or [] if isinstance(v, dict)]
        for name in only:
            if name not in names:
                raise ConfigError(
                    "no such variant in the sweep file",
                    file=str(path),
                    key="--variants",
                    given=name,
                    expected="one of " + (", ".join(map(str, names)) or "(the file has no variants)"),
                    suggestion=did_you_mean(name, [str(n) for n in names]),
                )
        data["variants"] = [v for v in data["variants"] if v.get("name") in only]
        if data.get("baseline") not in only:
            data.pop("baseline", None)
    return data


def slug(text: str) -> str:
    """A folder-name-safe form of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_.") or "x"


def _short(value: Any) -> str:
    """An axis value as a label: a YAML file by its stem, anything else as written."""
    if isinstance(value, str) and value.endswith((".yaml", ".yml")):
        return Path(value).stem
    return str(value)


def variant_cells(spec: SweepSpec) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, values, overrides) for each variant x search sample x grid cell, in file order (the last axis
    fastest); the values are the variant's name, the sample's draws and the axis values."""
    keys = list(spec.axes)
    cells = []
    for variant, (sample, drawn) in itertools.product(spec.variants or [None], draw(spec.search)):
        for combo in itertools.product(*(spec.axes[k] for k in keys)):
            values = dict(zip(keys, combo, strict=True))
            parts = (
                ([variant.name] if variant else [])
                + ([sample] if sample else [])
                + [f"{k.split('.')[-1]}={_short(v)}" for k, v in values.items()]
            )
            overrides = {**(variant.set if variant else {}), **drawn, **values}
            cells.append(
                (
                    ",".join(parts) or "base",
                    {**({"variant": variant.name} if variant else {}), **drawn, **values},
                    overrides,
                )
            )
    return cells


def base_experiment(spec: SweepSpec, sweep_file: str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """The sweep file's folder, the experiment's path and its mapping (``include:`` resolved)."""
    here = Path(sweep_file).resolve().parent
    exp_path = resolve_path(spec.experiment, here, "experiments")
    if exp_path is None:
        raise ConfigError(
            "experiment not found",
            file=str(sweep_file),
            key="experiment",
            given=spec.experiment,
            suggestion="a path relative to the sweep file or the working directory, or a recipe name",
        )
    return here, exp_path, load_with_includes(exp_path, "experiments")


def expand(spec: SweepSpec, sweep_file: str | Path) -> list[Trial]:
    """Every trial of the sweep with its experiment built and validated; the first bad trial raises a
    [`ConfigError`][biocircuits.errors.ConfigError] naming the sweep file and the sweep key that set the bad value."""
    here, exp_path, base = base_experiment(spec, sweep_file)
    cells = variant_cells(spec)
    if len(cells) * len(spec.seeds) > MAX_TRIALS:
        raise ConfigError(
            "too many trials",
            file=str(sweep_file),
            key="axes",
            expected=f"at most {MAX_TRIALS}",
            given=len(cells) * len(spec.seeds),
            suggestion="split the sweep",
        )
    trials = []
    for label, values, overrides in cells:
        for seed in spec.seeds:
            tid = f"{len(trials):03d}_{slug(label)[:80]}_s{seed}"
            sets = {**spec.set, **overrides, "train.seed": seed, "name": slug(f"{base.get('name', 'run')}-{tid}")}
            exp = build_trial(base, exp_path, here, sets, sweep_file, where=_origin(spec, overrides, label))
            trials.append(Trial(tid, label, values, seed, exp))
    return trials


def _origin(spec: SweepSpec, overrides: dict[str, Any], label: str) -> dict[str, str]:
    """For each override key, the sweep key that set it (for error messages)."""
    out = {k: f"set.{k}" for k in spec.set}
    for k in overrides:
        out[k] = (
            f"axes.{k}"
            if k in spec.axes
            else f"search.space.{k}"
            if spec.search and k in spec.search.space
            else f"variants[{label.split(',')[0]}].set.{k}"
        )
    return out


def build_trial(
    base: dict[str, Any],
    exp_path: Path,
    here: Path,
    sets: dict[str, Any],
    sweep_file: str | Path,
    where: dict[str, str],
) -> Experiment:
    """The experiment ``base`` with ``sets`` applied (shorter keys first; a constraint spec named by path is
    loaded when a ``constraints.*`` key edits it), validated with its constraint spec."""
    data = copy.deepcopy(base)
    for key in sorted(sets, key=lambda k: k.count(".")):
        value = sets[key]
        try:
            if key == "constraints" and isinstance(value, str):
                value = str(_find_spec(value, here, exp_path))
            if key.startswith("constraints.") and isinstance(data.get("constraints"), str):
                data["constraints"] = load_with_includes(_find_spec(data["constraints"], here, exp_path))
            _set(data, key, value)
        except ConfigError as err:
            raise ConfigError(
                err.message,
                file=str(sweep_file),
                key=where.get(key, key),
                expected=err.expected,
                given=err.given,
                has_given=err.has_given,
                suggestion=err.suggestion,
            ) from None
    try:
        exp = Experiment.from_dict(data, file=str(exp_path))
        exp.resolved_constraints()
    except ConfigError as err:
        raise _blame(err, sweep_file, where) from None
    return exp


def _blame(err: ConfigError, sweep_file: str | Path, where: dict[str, str]) -> ConfigError:
    """Re-aim an experiment's validation error at the sweep key that set the bad value (the longest prefix)."""
    first = err.errors[0] if hasattr(err, "errors") and err.errors else err
    key = first.key or ""
    owner = max((k for k in where if key == k or key.startswith(k + ".")), key=len, default=None)
    if owner is None:
        return err
    return ConfigError(
        first.message,
        file=str(sweep_file),
        key=f"{where[owner]} (experiment key {key})",
        expected=first.expected,
        given=first.given,
        has_given=first.has_given,
        suggestion=first.suggestion,
    )


def _find_spec(name: str, here: Path, exp_path: Path) -> Path:
    found = resolve_path(name, here, "constraints") or resolve_path(name, exp_path.parent, "constraints")
    if found is None:
        raise ConfigError(
            "constraint spec not found",
            given=name,
            suggestion="a path relative to the sweep file or the working directory, or a preset name",
        )
    return found.resolve()


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    node, parts = data, key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                "this key goes inside a value that is not a mapping",
                given=child,
                suggestion=f"set {'.'.join(parts[: i + 1])} itself",
            )
        node = child
    node[parts[-1]] = copy.deepcopy(value)
