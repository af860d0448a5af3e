"""What ``--resume`` may change: settings that leave the trajectory alone (length, intervals, progress, plots);
any other difference between the saved resolved config and the new one is refused with a diff of the keys."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from biocircuits.config.experiment import Experiment
from biocircuits.config.recorded import record_earlier
from biocircuits.errors import ConfigError, RunFolderError, short_repr

SAFE_KEYS = (
    "train.epochs",
    "train.steps",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.probe_every",
    "train.progress",
    "train.log_lines",
    "train.log_interval_s",
    "train.plots",
    "train.tensorboard",
    "data.prefetch_factor",
    "description",
    "output",
    "name",
)
_MISSING = "<missing>"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    if not isinstance(data, dict) or (not data and prefix):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_diff(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (saved value, new value)} for every key whose value differs (compared after a YAML round trip,
    as ``config.yaml`` stores them)."""
    a = flatten(yaml.safe_load(yaml.safe_dump(saved)) or {})
    b = flatten(yaml.safe_load(yaml.safe_dump(new)) or {})
    return {
        k: (a.get(k, _MISSING), b.get(k, _MISSING))
        for k in sorted(a.keys() | b.keys())
        if a.get(k, _MISSING) != b.get(k, _MISSING)
    }


def normalise(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config as today's schema resolves it (keys added since it was written get their defaults; recorded
    rule options it lacks get the values it ran with: `biocircuits.config.recorded.record_earlier`),
    or as saved when it no longer validates."""
    if isinstance(config.get("constraints"), dict):
        config = {**config, "constraints": record_earlier(copy.deepcopy(config["constraints"]))}
    try:
        return Experiment.from_dict(config).resolved_dict()
    except ConfigError:
        return config


def check_resume(saved: dict[str, Any], new: dict[str, Any], source: str) -> dict[str, list[Any]]:
    """The safe changes ``{key: [saved, new]}`` of resuming the run saved as ``saved`` (read from ``source``) with
    ``new``; raises [`RunFolderError`][biocircuits.errors.RunFolderError] listing every key that would change the
    trajectory."""
    diff = config_diff(normalise(saved), new)
    unsafe = [k for k in diff if k not in SAFE_KEYS]
    if unsafe:
        shown = "; ".join(f"{k}: {short_repr(diff[k][0])} -> {short_repr(diff[k][1])}" for k in unsafe[:8])
        more = f"; and {len(unsafe) - 8} more" if len(unsafe) > 8 else ""
        raise RunFolderError(
            f"--resume would change the trajectory: {shown}{more}",
            file=source,
            key=", ".join(unsafe[:8]),
            expected="the saved settings (only " + ", ".join(SAFE_KEYS) + " may change)",
            suggestion="resume with the saved settings, or start afresh with --overwrite or another --output",
        )
    return {k: list(v) for k, v in diff.items()}
