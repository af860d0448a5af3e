"""The experiment schema: data, model, optimiser, schedule, training settings and which constraint spec."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from biocircuits.core.imports import is_import_path
from biocircuits.data.cognitive import TASKS
from biocircuits.data.registry import dataset_source
from biocircuits.errors import ConfigError
from biocircuits.models import model_builder

from .constraints import Constraints, Strict
from .data_keys import check_dataset_keys
from .errors import from_validation_error
from .loading import apply_sets, load_with_includes, resolve_path
from .recorded import record_defaults

# Upper bounds on sizes that allocate memory or processes (far above any real run; a typo fails at once instead
# of after minutes of allocation). Floats are finite everywhere (allow_inf_nan=False).
MAX_BATCH = 65_536
MAX_SAMPLES = 100_000_000
MAX_IMAGE = 4096
MAX_WORKERS = 256
MAX_CLASSES = 1_000_000
MAX_SYNTHETIC_ELEMENTS = 1 << 31  # (train_size + val_size) * prod(shape) floats of synthetic data: 8 GiB


def search_folders(info: ValidationInfo) -> tuple[Path, ...]:
    """Where a user's module is looked for besides ``sys.path``: the experiment file's folder (the validation
    context's ``file``; the working directory is always tried)."""
    file = (info.context or {}).get("file") if info is not None else None
    return (Path(file).parent,) if file else ()


def resolvable(lookup: Callable[[str, tuple[Path, ...]], object]) -> AfterValidator:
    """Accept a name that ``lookup(name, search)`` resolves (a registered name, or an import path whose module
    imports and holds the attribute); its [`ConfigError`][biocircuits.errors.ConfigError] otherwise, relative to the
    field's key."""

    def check(name: str, info: ValidationInfo) -> str:
        try:
            lookup(name, search_folders(info))
        except ConfigError as err:
            raise ConfigError(
                err.message, expected=err.expected, given=err.given, has_given=err.has_given, suggestion=err.suggestion
            ) from None
        return name

    return AfterValidator(check)


DatasetName = Annotated[str, resolvable(dataset_source)]
ModelName = Annotated[str, resolvable(model_builder)]


class Section(Strict):
    """A section of the experiment file: unknown keys and non-finite floats are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataSpec(Section):
    """``data:``: a registered dataset (see [`biocircuits.data`][biocircuits.data]), or a user's builder
    ``"module:function"`` called with ``kwargs`` (returning the training and validation datasets of ``(x, y)`` pairs),
    and its loader settings."""

    name: DatasetName = "digits"
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = Field(0, ge=0, lt=2**63)
    image_size: int | None = Field(None, ge=8, le=MAX_IMAGE)
    val_labels: str | None = None  # imagefolder: LOC_val_solution.csv or the ILSVRC2012 devkit for a flat val/
    channels: int | None = Field(None, ge=1, le=4)  # repeat grayscale images to this many channels
    resize: int | None = Field(None, ge=4, le=1024)  # resize in-memory images to resize x resize
    shape: list[Annotated[int, Field(ge=1, le=1 << 20)]] = Field(
        default_factory=lambda: [3, 32, 32], min_length=1, max_length=4
    )
    num_classes: int = Field(10, ge=2, le=MAX_CLASSES)
    train_size: int = Field(512, ge=1, le=MAX_SAMPLES)
    val_size: int = Field(128, ge=1, le=MAX_SAMPLES)
    num_workers: int = Field(0, ge=0, le=MAX_WORKERS)
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = Field(None, ge=1, le=64)  # batches each worker loads ahead (torch default 2)
    shuffle_buffer: int = Field(1000, ge=0, le=1_000_000)  # webdataset: samples shuffled per stream
    decode: Literal["cpu", "gpu"] = "cpu"  # imagefolder: gpu decodes training JPEGs on the device (nvJPEG)
    task: str | None = None  # cognitive: a name in biocircuits.data.cognitive.TASKS; neurogym: an environment id
    task_options: dict[str, Any] = Field(default_factory=dict)  # the task's keyword arguments (dt, periods, ...)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kwargs_for_builders(self) -> DataSpec:
        if self.kwargs and not is_import_path(self.name):
            raise ConfigError(
                "data.kwargs is passed to a dataset builder given by import path",
                key="kwargs",
                expected="no kwargs for the registered dataset " + repr(self.name),
                given=self.kwargs,
                suggestion="use the data section's own keys, or data.name: 'package.module:function'",
            )
        return self

    @model_validator(mode="after")
    def _read_by_the_dataset(self) -> DataSpec:
        check_dataset_keys(self)
        return self

    @model_validator(mode="after")
    def _task_known(self) -> DataSpec:
        if self.name == "cognitive" and self.task is not None:
            try:
                TASKS.get(self.task)
            except ConfigError as err:  # the tasks and a "did you mean", under this key
                raise ConfigError(
                    err.message, key="task", expected=err.expected, given=err.given, suggestion=err.suggestion
                ) from None
        return self

    @model_validator(mode="after")
    def _synthetic_fits(self) -> DataSpec:
        if self.name == "synthetic":
            elements = (self.train_size + self.val_size) * math.prod(self.shape)
            if elements > MAX_SYNTHETIC_ELEMENTS:
                raise ConfigError(
                    "synthetic data too large",
                    key="train_size",
                    expected=f"(train_size + val_size) * prod(shape) <= {MAX_SYNTHETIC_ELEMENTS}",
                    given=elements,
                    suggestion="lower train_size, val_size or shape",
                )
        return self


class ModelSpec(Section):
    """``model:``: a registered model (``mlp``, ``lenet``, ``convnet``, or any torchvision classifier), a user's
    builder ``"module:function"`` (called with ``num_classes`` and ``kwargs``, returning an ``nn.Module``) or
    ``"timm/<name>"``, and its keyword arguments; ``num_classes`` defaults to the dataset's. ``checkpoint``: a file
    of weights loaded before the constraints are applied (a torch state_dict, or a biocircuits checkpoint's model;
    relative to the experiment file or the working directory)."""

    name: ModelName = "mlp"
    num_classes: int | None = Field(None, ge=2, le=MAX_CLASSES)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = Field(None, min_length=1)


class OptimSpec(Section):
    """``optim:``: the optimiser; ``last_layer_lr`` trains the last weight layer (``last_layer``, default the
    last Linear/Conv in module order) at its own rate, as Xiao et al. 2018 did."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    last_layer_lr: float | None = Field(None, gt=0.0)
    last_layer: str | None = None


class ScheduleSpec(Section):
    """``schedule:``: lr schedule, stepped per optimiser step; ``step_size``, ``milestones`` and ``warmup_epochs``
    are in epochs. ``step``: lr * gamma^(epoch // step_size); ``multistep``: lr * gamma^(milestones passed);
    ``cosine``: half a cosine from lr to ``min_lr``; warmup: linear from 0 over the first epochs."""

    name: Literal["constant", "step", "multistep", "cosine"] = "constant"
    step_size: float = Field(30, gt=0)
    gamma: float = Field(0.1, gt=0.0)
    milestones: list[float] = Field(default_factory=list)
    min_lr: float = Field(0.0, ge=0.0)
    warmup_epochs: float = Field(0.0, ge=0.0)


class TrainSpec(Section):
    """``train:``: length (``epochs``, or ``steps`` optimiser steps), global batch size (split over DDP ranks),
    gradient clipping and accumulation, label smoothing, seeding, intervals (in optimiser steps; eval and
    checkpoint default to once per epoch), and the scale settings (amp, channels_last, compile)."""

    epochs: int = Field(1, ge=1, le=1_000_000)
    steps: int | None = Field(None, ge=1, le=10**12)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    eval_batch_size: int | None = Field(None, ge=1, le=MAX_BATCH)
    grad_clip: float | None = Field(None, gt=0.0)
    grad_accum: int = Field(1, ge=1, le=4096)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0, lt=2**63)
    deterministic: bool = False
    log_every: int = Field(10, ge=1)
    eval_every: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)
    probe_every: int | None = Field(100, ge=1)  # ~1.02x step time on resnet18 (docs/benchmarks.md)
    probe_batch: int = Field(64, ge=1, le=MAX_BATCH)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    compile: bool = False
    progress: bool | None = None
    log_lines: bool | None = None  # plain progress lines on stdout; unset: when stdout is not a terminal
    log_interval_s: float = Field(60.0, ge=0.0)
    tensorboard: bool = False
    plots: bool = True


class Experiment(Section):
    """An experiment file. ``constraints`` is a path (relative to the file, the working directory or
    ``constraints/``) or an inline constraint spec."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")  # one safe path component: not . or ..
    description: str = ""
    constraints: str | Constraints = Field(default_factory=Constraints)
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    output: str = "runs"
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _min_lr_at_most_lr(self) -> Experiment:
        if self.schedule.min_lr > self.optim.lr:
            raise ConfigError(
                "min_lr above lr would ramp the rate up",
                key="schedule.min_lr",
                expected=f"at most optim.lr = {self.optim.lr}",
                given=self.schedule.min_lr,
                suggestion="lower schedule.min_lr or raise optim.lr",
            )
        return self

    def resolved_constraints(self) -> Constraints:
        """The constraint spec, loaded from its file when given as a path, with the seeds it leaves unset taken
        from ``train.seed`` ([`seeded`][biocircuits.config.experiment.seeded])."""
        return seeded(self._constraint_spec(), self.train.seed)

    def _constraint_spec(self) -> Constraints:
        if isinstance(self.constraints, Constraints):
            return self.constraints
        here = Path(self.source).parent if self.source else None
        found = resolve_path(self.constraints, here, "constraints")
        if found is None:
            raise ConfigError(
                "constraint spec not found",
                file=self.source,
                key="constraints",
                given=self.constraints,
                suggestion="paths are relative to the experiment file, the working directory or constraints/",
            )
        return Constraints.from_yaml(found)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
        """Load an experiment file (a path, or the name of a shipped recipe: see
        [`resolve_path`][biocircuits.config.loading.resolve_path]), apply ``--set`` overrides, validate, and check its
        constraint spec."""
        path = resolve_path(path, None, "experiments") or path
        data = load_with_includes(path, "experiments")
        if overrides:
            spec = data.get("constraints")
            if isinstance(spec, str) and any(k.startswith("constraints.") for k in overrides):
                found = resolve_path(spec, Path(path).parent, "constraints")
                if found is not None:  # --set constraints.x=y edits the referenced spec
                    data["constraints"] = load_with_includes(found, "constraints")
            data = apply_sets(data, overrides)
        exp = cls.from_dict(data, file=str(path))
        exp.resolved_constraints()
        return exp

    @classmethod
    def from_dict(cls, data: dict[str, Any], file: str | None = None) -> Experiment:
        """Validate a mapping (``source`` is not accepted from it); errors name ``file`` and the key path."""
        if not isinstance(data, dict):
            raise ConfigError(
                "an experiment must be a mapping", file=file, expected="a mapping", given=type(data).__name__
            )
        if "source" in data:
            raise ConfigError(
                "internal key, set by biocircuits itself",
                file=file,
                key="source",
                expected="no such key",
                suggestion="remove it",
            )
        try:
            exp = cls.model_validate(data, context={"file": file})
        except ValidationError as err:
            raise from_validation_error(err, cls, file, data) from None
        exp.source = file
        return exp

    def checkpoint_path(self) -> Path | None:
        """``model.checkpoint`` resolved: relative to the experiment file's folder when the file is there, else to
        the working directory; None when unset. A [`ConfigError`][biocircuits.errors.ConfigError] when no file is
        found."""
        given = self.model.checkpoint
        if given is None:
            return None
        here = [Path(self.source).parent] if self.source else []
        for base in (*here, Path.cwd()):
            if (base / Path(given).expanduser()).is_file():
                return (base / Path(given).expanduser()).resolve()
        raise ConfigError(
            "checkpoint file not found",
            file=self.source,
            key="model.checkpoint",
            given=given,
            expected="a file holding a state_dict or a biocircuits checkpoint",
            suggestion="paths are relative to the experiment file or the working directory",
        )

    def resolved_dict(self) -> dict[str, Any]:
        """The full config with defaults filled, the constraint spec inlined and ``model.checkpoint`` made absolute
        (written as config.yaml)."""
        out = self.model_dump(mode="json")
        out["constraints"] = record_defaults(self.resolved_constraints().model_dump(mode="json"))
        if self.model.checkpoint is not None:  # absolute, so the saved config finds it from the run folder
            out["model"]["checkpoint"] = str(self.checkpoint_path())
        return out


SEEDED = ("feedback", "phases")  # the spec sections whose ``seed`` follows train.seed unless set


def seeded(spec: Constraints, seed: int) -> Constraints:
    """``spec`` with ``feedback.seed`` (random feedback matrices) and ``phases.seed`` (the transforms' noise) set to
    the run's ``train.seed`` where the spec leaves them unset, so that a seed changes every random draw; a seed
    the spec sets stays. A copy when anything changes; ``spec`` itself is left alone. (Saved configs hold every
    seed explicitly, so a run resumes from its ``config.yaml`` as it was.)"""
    updates = {
        name: getattr(spec, name).model_copy(update={"seed": seed})
        for name in SEEDED
        if "seed" not in getattr(spec, name).model_fields_set and getattr(spec, name).seed != seed
    }
    if not updates:
        return spec
    out = spec.model_copy(update=updates)
    out.source = spec.source
    return out
