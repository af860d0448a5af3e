"""What a run is made of, built from an [`Experiment`][biocircuits.config.experiment.Experiment]: processes and device,
data and loaders, the constrained model (DDP- and compile-wrapped), optimiser, schedule and the phase-separated step;
and the run context that sets torch's global flags for the run and restores them after it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment, TrainSpec
from biocircuits.core import constraint_buffer_names
from biocircuits.data.device_decode import check_decode
from biocircuits.data.loaders import make_loader
from biocircuits.data.registry import DataBundle, build_data
from biocircuits.errors import ConfigError
from biocircuits.phases.step import PhaseCallback, PhasedStep
from biocircuits.phases.transforms.streams import set_shard
from biocircuits.recurrent.step import online_step

from . import distributed
from .optim import build_optimizer, build_scheduler
from .targets import task_loss
from .weights import plain_model

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class RunParts:
    """Everything one run trains with. ``module`` is the plain converted model (state dicts, probes); ``model`` is
    what the step calls (``module`` wrapped in DDP and/or ``torch.compile`` when asked for)."""

    dist: distributed.DistInfo
    device: torch.device
    data: DataBundle
    num_classes: int
    constraints: bc.Constraints
    module: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    amp_dtype: torch.dtype | None
    train_loader: Any
    train_sampler: Any
    val_loader: Any
    per_rank_batch: int
    steps_per_epoch: int
    total_steps: int
    phased: PhasedStep


def device_kind(t: TrainSpec) -> str:
    """``cuda`` or ``cpu`` from ``train.device`` (``auto``: CUDA when available)."""
    if t.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "CUDA is not available here", key="train.device", given="cuda", suggestion="use train.device: cpu or auto"
        )
    return "cuda" if t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available()) else "cpu"


@contextmanager
def run_context(t: TrainSpec) -> Iterator[None]:
    """Torch's global flags for one run (deterministic algorithms, cuDNN autotuning), restored afterwards."""
    kind = device_kind(t)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = kind == "cuda" and not t.deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]


@contextmanager
def stop_on_signals(flag: dict[str, bool]) -> Iterator[None]:
    """SIGINT/SIGTERM set ``flag['stop']``: the loop then writes a checkpoint and returns cleanly. Off the main
    thread (a Ray Tune trial) signals are not ours to take: the engine stops the trial."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True

    with handling_signals(handler):
        yield


@contextmanager
def handling_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` takes SIGINT and SIGTERM inside the block; the previous handlers come back after it."""
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def build_run(exp: Experiment, phase_callbacks: Sequence[PhaseCallback] = ()) -> RunParts:
    """Build every part in a fixed order (the random draws of init, feedback matrices and data order depend on it):
    seed ``train.seed`` on every rank, data, model, ``bc.apply``, optimiser with ``bc.bind``, wrappers, loaders,
    schedule; then reseed each rank with ``seed + 1 + rank`` (dropout, augmentation)."""
    t = exp.train
    kind = device_kind(t)
    check_decode(exp.data.decode, kind, exp.data.name)
    dist = distributed.setup(kind)
    device = torch.device(f"cuda:{dist.local_rank}" if kind == "cuda" else "cpu")
    if t.batch_size % dist.world:
        raise ConfigError(
            "train.batch_size must divide evenly over the processes",
            key="train.batch_size",
            given=t.batch_size,
            expected=f"a multiple of {dist.world}",
        )
    torch.manual_seed(t.seed)  # same initial weights on every rank
    data, num_classes, module, constraints = _model_and_data(exp, dist, device)
    optimizer = bc.bind(build_optimizer(module, exp.optim), module)
    model = _wrap(module, dist, kind, t.compile)
    loaders = _loaders(exp, data, dist)
    steps_per_epoch = max(1, len(loaders[0]) // t.grad_accum)
    total_steps = t.steps or t.epochs * steps_per_epoch
    scheduler = build_scheduler(optimizer, exp.schedule, steps_per_epoch, total_steps, exp.optim.lr)
    amp_dtype, scaler = AMP_DTYPES[t.amp], torch.amp.GradScaler(kind) if t.amp == "fp16" else None
    phased = PhasedStep(
        model,
        optimizer,
        lambda out, y: task_loss(out, y, t.label_smoothing),
        amp_dtype=amp_dtype,
        scaler=scaler,
        grad_clip=t.grad_clip,
        accum=t.grad_accum,
        callbacks=phase_callbacks,
    )
    phased = online_step(phased, module)  # an online rule (eprop, rflo) fills .grad itself: no forward + backward
    torch.manual_seed(t.seed + 1 + dist.rank)  # each rank its own stream from here (dropout, augmentation)
    return RunParts(
        dist,
        device,
        data,
        num_classes,
        constraints,
        module,
        model,
        optimizer,
        scheduler,
        scaler,
        amp_dtype,
        *loaders,
        t.batch_size // dist.world,
        steps_per_epoch,
        total_steps,
        phased,
    )


def _model_and_data(
    exp: Experiment, dist: distributed.DistInfo, device: torch.device
) -> tuple[DataBundle, int, nn.Module, bc.Constraints]:
    """The dataset, the class count, and the model built for it, converted by ``bc.apply`` and on ``device``."""
    data = build_data(exp.data)
    num_classes = exp.model.num_classes or data.num_classes
    if num_classes < data.num_classes:
        raise ConfigError(
            "fewer classes than the dataset's labels",
            key="model.num_classes",
            expected=f"at least {data.num_classes} (the dataset's classes)",
            given=num_classes,
            suggestion="leave model.num_classes out to use the dataset's",
        )
    module = plain_model(exp, data.input_shape, num_classes)  # with model.checkpoint's weights, before bc.apply
    constraints = exp.resolved_constraints()
    bc.apply(module, constraints)
    set_shard(module, dist.world)  # per-stream state: this rank holds every world-th stream
    module.to(device)
    if exp.train.channels_last:
        module.to(memory_format=torch.channels_last)
    return data, num_classes, module, constraints


def _wrap(module: nn.Module, dist: distributed.DistInfo, kind: str, compile: bool) -> nn.Module:
    """DDP across processes (rule buffers are identical on every rank by construction: not broadcast), then
    ``torch.compile`` when asked for."""
    model = module
    if dist.enabled:
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            model, constraint_buffer_names(model)
        )
        model = nn.parallel.DistributedDataParallel(model, device_ids=[dist.local_rank] if kind == "cuda" else None)
    return torch.compile(model) if compile else model


def _loaders(exp: Experiment, data: DataBundle, dist: distributed.DistInfo) -> tuple[Any, Any, Any]:
    """(train loader, its sampler, validation loader), each rank loading its share."""
    t = exp.train
    train_loader, sampler = make_loader(
        data.train, t.batch_size // dist.world, train=True, world=dist.world, rank=dist.rank, seed=t.seed, spec=exp.data
    )
    if len(train_loader) == 0:
        raise ConfigError("the training set is smaller than one batch", key="train.batch_size", given=t.batch_size)
    val_loader, _ = make_loader(
        data.val,
        (t.eval_batch_size or t.batch_size) // dist.world or 1,
        train=False,
        world=dist.world,
        rank=dist.rank,
        seed=t.seed,
        spec=exp.data,
    )
    return train_loader, sampler, val_loader
