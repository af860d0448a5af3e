"""The experiment schema: data, model, optimiser, schedule, training settings and which constraint spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from biocircuits.data import DATASETS
from biocircuits.errors import ConfigError
from biocircuits.models import MODELS

from .constraints import Constraints, Strict, registered
from .errors import from_validation_error
from .loading import apply_sets, load_with_includes, resolve_path

DatasetName = Annotated[str, registered(DATASETS.get)]
ModelName = Annotated[str, registered(MODELS.get)]


class DataSpec(Strict):
    """``data:``: a registered dataset (see :mod:`biocircuits.data`) and its loader settings."""

    name: DatasetName = "digits"
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = 0
    image_size: int | None = Field(None, ge=8)
    channels: int | None = Field(None, ge=1, le=4)       # repeat grayscale images to this many channels
    resize: int | None = Field(None, ge=4, le=1024)      # resize in-memory images to resize x resize
    shape: list[int] = Field(default_factory=lambda: [3, 32, 32])
    num_classes: int = Field(10, ge=2)
    train_size: int = Field(512, ge=1)
    val_size: int = Field(128, ge=1)
    num_workers: int = Field(0, ge=0)
    pin_memory: bool = False
    persistent_workers: bool = False


class ModelSpec(Strict):
    """``model:``: a registered model (``mlp``, ``lenet``, ``convnet``, or any torchvision classifier) and its
    keyword arguments; ``num_classes`` defaults to the dataset's."""

    name: ModelName = "mlp"
    num_classes: int | None = Field(None, ge=2)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class OptimSpec(Strict):
    """``optim:``: the optimiser; ``last_layer_lr`` trains the last weight layer (``last_layer``, default the
    last Linear/Conv in module order) at its own rate, as Xiao et al. 2018 did."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    last_layer_lr: float | None = Field(None, gt=0.0)
    last_layer: str | None = None


class ScheduleSpec(Strict):
    """``schedule:``: lr schedule, stepped per optimiser step; ``step_size``, ``milestones`` and ``warmup_epochs``
    are in epochs. ``step``: lr * gamma^(epoch // step_size); ``multistep``: lr * gamma^(milestones passed);
    ``cosine``: half a cosine from lr to ``min_lr``; warmup: linear from 0 over the first epochs."""

    name: Literal["constant", "step", "multistep", "cosine"] = "constant"
    step_size: float = Field(30, gt=0)
    gamma: float = Field(0.1, gt=0.0)
    milestones: list[float] = Field(default_factory=list)
    min_lr: float = Field(0.0, ge=0.0)
    warmup_epochs: float = Field(0.0, ge=0.0)


class TrainSpec(Strict):
    """``train:``: length (``epochs``, or ``steps`` optimiser steps), global batch size (split over DDP ranks),
    gradient clipping and accumulation, label smoothing, seeding, intervals (in optimiser steps; eval and
    checkpoint default to once per epoch), and the scale settings (amp, channels_last, compile)."""

    epochs: int = Field(1, ge=1)
    steps: int | None = Field(None, ge=1)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(None, gt=0.0)
    grad_accum: int = Field(1, ge=1)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 0
    deterministic: bool = False
    log_every: int = Field(10, ge=1)
    eval_every: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)
    probe_every: int | None = Field(100, ge=1)  # ~1.02x step time on resnet18 (docs/benchmarks.md)
    probe_batch: int = Field(64, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    compile: bool = False
    progress: bool | None = None
    tensorboard: bool = False
    plots: bool = True


class Experiment(Strict):
    """An experiment file. ``constraints`` is a path (relative to the file, the working directory or
    ``constraints/``) or an inline constraint spec."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    constraints: str | Constraints = Field(default_factory=Constraints)
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    output: str = "runs"
    source: str | None = Field(default=None, exclude=True)

    def resolved_constraints(self) -> Constraints:
        """The constraint spec, loaded from its file when given as a path."""
        if isinstance(self.constraints, Constraints):
            return self.constraints
        here = Path(self.source).parent if self.source else None
        found = resolve_path(self.constraints, here, "constraints")
        if found is None:
            raise ConfigError("constraint spec not found", file=self.source, key="constraints",
                              given=self.constraints,
                              suggestion="paths are relative to the experiment file, the working directory or "
                                         "constraints/")
        return Constraints.from_yaml(found)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
        """Load an experiment file (a path, or the name of a shipped recipe: see :func:`resolve_path`), apply
        ``--set`` overrides, validate, and check its constraint spec."""
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
        try:
            exp = cls.model_validate(data)
        except ValidationError as err:
            raise from_validation_error(err, cls, file) from None
        exp.source = file
        return exp

    def resolved_dict(self) -> dict[str, Any]:
        """The full config with defaults filled and the constraint spec inlined (written as config.yaml)."""
        out = self.model_dump(mode="json")
        out["constraints"] = self.resolved_constraints().model_dump(mode="json")
        return out
