"""Start from saved weights (``model.checkpoint``): a plain torch state_dict (pretrained weights, a plain model's
``torch.save(model.state_dict())``) or a biocircuits checkpoint, whose constrained model is taken back to plain
torch layers (``bc.remove``) first. Loaded before ``bc.apply``, so that whatever the constraints derive from W
(fa ``init: signed``, Dale's signed init) is derived from the loaded W."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.errors import ConfigError
from biocircuits.models.registry import build_model

from .checkpoint import FORMAT

KEY = "model.checkpoint"
LISTED = 6  # keys named in a mismatch message before "... and N more"


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged or pickled-object files
        raise ConfigError(
            f"unreadable weights file ({type(err).__name__})",
            key=KEY,
            given=str(path),
            expected="a file written by torch.save(model.state_dict(), path) or a biocircuits checkpoint.pt",
            suggestion="save the state_dict itself, not the pickled model",
        ) from None


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _plain_state(model: nn.Module, ckpt: dict[str, Any], path: Path) -> dict[str, Tensor]:
    """The plain-torch state of a biocircuits checkpoint's model: a copy of ``model`` converted with the
    checkpoint's own constraints, loaded, and converted back (Dale reparametrisations folded into plain
    weights; feedback matrices and every other attachment buffer dropped). On the meta device only the keys and
    shapes are checked (loading there copies nothing)."""
    spec = (ckpt.get("config") or {}).get("constraints")
    if spec is None:
        return ckpt["model"]
    twin = copy.deepcopy(model)
    try:
        bc.apply(twin, bc.Constraints.model_validate(spec))
    except (ConfigError, ValueError) as err:
        raise ConfigError(
            f"the constraints of the run that wrote {path} do not apply to this model: {err}",
            key=KEY,
            given=str(path),
            suggestion="start from a plain state_dict of the weights instead",
        ) from None
    check_keys(twin, ckpt["model"], f"{path} (a biocircuits checkpoint)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*meta parameter.*no-op")  # validate: nothing to copy
        twin.load_state_dict(ckpt["model"])
    return bc.remove(twin).state_dict()


def state_from_file(model: nn.Module, path: Path) -> dict[str, Tensor]:
    """The plain state_dict held by ``path``: the file's dict itself, its ``state_dict`` entry (Lightning and
    many training scripts), or a biocircuits checkpoint's model (see
    [`_plain_state`][biocircuits.train.weights._plain_state])."""
    obj = _read(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT and "model" in obj:
        return _plain_state(model, obj, path)
    if isinstance(obj, dict) and _is_state_dict(obj.get("state_dict")):
        return obj["state_dict"]
    if _is_state_dict(obj):
        return obj
    raise ConfigError(
        "the weights file holds no state_dict",
        key=KEY,
        given=f"{path} ({type(obj).__name__})",
        has_given=True,
        expected="a mapping of parameter names to tensors",
        suggestion="save it with torch.save(model.state_dict(), path)",
    )


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def check_keys(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Every key of ``model``'s state_dict in ``state`` with its shape, and no other: a
    [`ConfigError`][biocircuits.errors.ConfigError] listing the missing, unexpected and wrongly shaped keys
    otherwise."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} for {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = [
        f"{label}: {_listed(names)}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
        if names
    ]
    raise ConfigError(
        f"the weights in {source} do not match the model ({'; '.join(parts)})",
        key=KEY,
        given=type(model).__name__,
        has_given=True,
        suggestion="build the model the weights came from (model.name, model.kwargs, model.num_classes, data shape)",
    )


@torch.no_grad()
def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights at ``path`` into the plain (not yet converted) ``model``, strictly: every key, every
    shape ([`check_keys`][biocircuits.train.weights.check_keys]). Returns ``model``."""
    path = Path(path)
    state = state_from_file(model, path)
    check_keys(model, state, str(path))
    model.load_state_dict(state)
    return model


def plain_model(exp: Experiment, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The experiment's model before ``bc.apply``: built ([`build_model`][biocircuits.models.registry.build_model]; a
    user's module is looked for beside the experiment file too) and, with ``model.checkpoint``, loaded from it."""
    search = (Path(exp.source).parent,) if exp.source else ()
    model = build_model(exp.model.name, input_shape, num_classes, exp.model.kwargs, search=search)
    path = exp.checkpoint_path()
    return load_weights(model, path) if path is not None else model
