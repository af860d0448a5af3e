"""The model registry: a new model is one builder ``fn(input_shape, num_classes, **kwargs) -> nn.Module`` with
``@register_model("name")`` (that is, ``@MODELS.register("name")``). Two more kinds of name need no registration:
``"my_pkg.models:build"`` (a user's builder, by import path) and ``"timm/<name>"`` (a timm model, when installed)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biocircuits.core import Registry
from biocircuits.core.imports import is_import_path, load_object
from biocircuits.errors import ConfigError

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
register_model = MODELS.register
MAX_SIZE = 1 << 16  # the largest integer a registered model's kwargs take (a width, a channel count, a pool size)
TIMM_PREFIX = "timm/"


def user_builder(path: str, search: tuple[Path, ...] = ()) -> ModelBuilder:
    """A builder calling the user's ``fn(num_classes=..., **kwargs)`` named by ``path = "module:function"``;
    ``input_shape`` is passed too when ``fn`` takes a parameter of that name."""
    fn = load_object(path, "model.name", search)
    try:
        takes_shape = "input_shape" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        takes_shape = False

    def build(input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        shape = {"input_shape": tuple(input_shape)} if takes_shape else {}
        return fn(num_classes=num_classes, **shape, **kwargs)

    return build


def model_builder(name: str, search: tuple[Path, ...] = ()) -> ModelBuilder:
    """The builder for ``name``: a registered model, ``"module:function"`` (imported, ``search`` folders tried for
    its package) or ``"timm/<name>"``; a [`ConfigError`][biocircuits.errors.ConfigError] naming ``model.name``
    otherwise."""
    if is_import_path(name):
        return user_builder(name, search)
    if isinstance(name, str) and name.startswith(TIMM_PREFIX):
        from .timm_models import timm_builder

        return timm_builder(name.removeprefix(TIMM_PREFIX))
    try:
        return MODELS.get(name)
    except ConfigError as err:
        err.key = "model.name"
        err.suggestion = (err.suggestion + "; " if err.suggestion else "") + (
            "or your own builder as 'package.module:function', or 'timm/<name>'"
        )
        err.args = (err.render(),)
        raise


def check_sizes(value: Any, key: str) -> None:
    """Every integer in ``value`` (nested lists and dicts; not booleans) lies in
    [0, [`MAX_SIZE`][biocircuits.models.registry.MAX_SIZE]]: a registered model's integer kwargs are sizes. A
    [`ConfigError`][biocircuits.errors.ConfigError] names the key of the first that does not."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_sizes(v, f"{key}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_sizes(v, f"{key}[{i}]")
    elif isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_SIZE:
        raise ConfigError(
            "a size must lie in 0..MAX_SIZE" if value >= 0 else "a size cannot be negative",
            key=key,
            expected=f"an integer from 0 to {MAX_SIZE}",
            given=value,
            suggestion="check the sign and the number of digits",
        )


def _negative_keys(value: Any, key: str) -> list[str]:
    """Keys of ``value`` (nested) holding a negative integer: the likely cause when a builder fails."""
    if isinstance(value, dict):
        return [k for name, v in value.items() for k in _negative_keys(v, f"{key}.{name}")]
    if isinstance(value, list | tuple):
        return [k for i, v in enumerate(value) for k in _negative_keys(v, f"{key}[{i}]")]
    return [key] if isinstance(value, int) and not isinstance(value, bool) and value < 0 else []


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    kwargs: dict[str, Any],
    search: tuple[Path, ...] = (),
    device: str | torch.device | None = None,
) -> nn.Module:
    """Build the model ``name`` (see [`model_builder`][biocircuits.models.registry.model_builder]) for inputs of
    ``input_shape`` with ``num_classes`` outputs, on ``device`` (default torch's). A registered model's integer kwargs
    are checked as sizes first ([`check_sizes`][biocircuits.models.registry.check_sizes]); whatever the builder raises,
    or a result that is not an ``nn.Module``, is a [`ConfigError`][biocircuits.errors.ConfigError] naming
    ``model.kwargs`` (the key holding a negative number, when one does) or ``model.name`` — except on the meta device,
    where the builder's own error is raised (a builder that reads weight values cannot run there; the caller builds on
    the CPU instead)."""
    builder = model_builder(name, search)
    if name in MODELS:
        check_sizes(kwargs, "model.kwargs")
    try:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            model = builder(tuple(input_shape), num_classes, **kwargs)
    except ConfigError:
        raise
    except Exception as err:  # the builder's own error: bad kwargs, most often
        if torch.device(device or "cpu").type == "meta":
            raise
        culprits = _negative_keys(kwargs, "model.kwargs")
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise ConfigError(
            f"model {name!r} could not be built: {type(err).__name__}: {first}",
            key=culprits[0] if culprits else "model.kwargs",
            given=kwargs,
            has_given=True,
            suggestion="a size cannot be negative"
            if culprits
            else "check model.kwargs against the builder's parameters (--debug shows the traceback)",
        ) from err
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model builder {name!r} did not return an nn.Module",
            key="model.name",
            expected="a torch.nn.Module",
            given=type(model).__name__,
            has_given=True,
            suggestion="return the network itself (not a tuple, a class or a state dict)",
        )
    return model
