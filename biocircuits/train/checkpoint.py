"""Atomic, safely loadable checkpoints: written by [`biocircuits.core.atomic`][biocircuits.core.atomic] (temp file,
fsync, ``os.replace``); loaded with ``weights_only=True``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from biocircuits.core.atomic import atomic_write, clean_stale_temps
from biocircuits.errors import CheckpointError

FORMAT = "biocircuits-checkpoint-v1"


def rng_state() -> dict[str, Any]:
    """Every RNG stream a run draws from: Python, torch CPU and (when used) CUDA."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, list | tuple) else x


def nonfinite_entries(state: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating tensors in ``state`` (nested dicts and lists, e.g. a model's and an optimiser's
    state dicts) that hold a NaN or an infinity; one device sync for all of them."""
    found: list[tuple[str, torch.Tensor]] = []

    def walk(x: Any, name: str) -> None:
        if isinstance(x, torch.Tensor):
            if x.is_floating_point() or x.is_complex():
                found.append((name, x))
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{name}.{k}" if name else str(k))
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(v, f"{name}[{i}]")

    walk(state, prefix)
    if not found:
        return []
    finite = torch.stack([torch.isfinite(t).all().cpu() for _, t in found]).tolist()
    return [name for (name, _), ok in zip(found, finite, strict=True) if not ok]


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically ([`atomic_write`][biocircuits.core.atomic.atomic_write]: a reader, or a
    crash, sees the old file or the new one). Temp files of an earlier, killed save are removed first."""
    clean_stale_temps(path)
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **payload}, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by [`save_checkpoint`][biocircuits.train.checkpoint.save_checkpoint]; a missing,
    truncated, corrupt or foreign file raises [`CheckpointError`][biocircuits.errors.CheckpointError] saying which."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (nothing to resume); start without --resume")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise CheckpointError(
            f"{path}: unreadable checkpoint (truncated or corrupt: {type(err).__name__}); "
            "delete it to start afresh, or restore a copy"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a biocircuits checkpoint (expected format {FORMAT!r}); "
            "to start from plain weights, load them into the model before bc.apply"
        )
    return data
