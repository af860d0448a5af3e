"""The sweep folder: ``sweep.json`` (the sweep file, engine, machine, commands), ``trials/<id>/`` (one ordinary run
folder per trial, plus its ``trial.json``: place in the sweep and status), ``results.*`` and ``summary.*``."""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

from biocircuits import __version__
from biocircuits.core.atomic import atomic_write_json, atomic_write_text
from biocircuits.errors import ConfigError

TRIAL_FILE = "trial.json"
DONE = ("finished", "failed", "stopped")  # results (stopped: by the scheduler): a rerun leaves them alone


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically ([`biocircuits.core.atomic`][biocircuits.core.atomic])."""
    atomic_write_json(path, data, default=str)


def write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class SweepFolder:
    """Paths of a sweep folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def record(self) -> Path:
        return self.path / "sweep.json"

    def trial(self, trial_id: str) -> Path:
        return self.path / "trials" / trial_id

    def trial_state(self, trial_id: str) -> dict[str, Any]:
        return read_json(self.trial(trial_id) / TRIAL_FILE)

    def trial_ids(self) -> list[str]:
        """The trial folders that hold a ``trial.json``, by name (runs set aside as ``<id>.old-N`` left out)."""
        return sorted(p.parent.name for p in self.path.glob(f"trials/*/{TRIAL_FILE}") if ".old-" not in p.parent.name)

    @property
    def tune(self) -> Path:
        return self.path / "tune"

    def is_sweep(self) -> bool:
        return self.record.is_file()


def machine() -> dict[str, Any]:
    """Where the sweep was started: host, OS, Python, CPU count, torch and biocircuits versions."""
    import torch

    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "biocircuits": __version__,
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }


def start_record(
    folder: SweepFolder,
    sweep_file: str | Path,
    sweep: dict[str, Any],
    trial_ids: list[str] | None,
    engine_version: str,
    address: str | None,
) -> dict[str, Any]:
    """Write (or extend, on a rerun) ``sweep.json``. A folder that holds another sweep file's trials is refused.
    ``trial_ids``: the planned trials (None for a search whose samples are chosen while it runs: they are found
    in ``trials/``)."""
    old = read_json(folder.record) if folder.record.is_file() else {}
    if old and (
        old.get("sweep") != json.loads(json.dumps(sweep, default=str)) or old.get("trials") != (trial_ids or [])
    ):
        raise ConfigError(
            "this folder holds another sweep (its sweep file differs)",
            key="--output",
            given=str(folder.path),
            expected="the folder of this very sweep, or a new one",
            suggestion="rerun with the sweep file it was made from, or choose another --output",
        )
    command = {
        "argv": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "time": time.time(),
        "address": address,
        "engine_version": engine_version,
    }
    record = old or {
        "sweep_file": str(Path(sweep_file).resolve()),
        "sweep": sweep,
        "engine": "ray",
        "engine_version": engine_version,
        "machine": machine(),
        "created_at": time.time(),
        "trials": trial_ids or [],
        "commands": [],
    }
    record["engine_version"] = engine_version
    record["commands"].append(command)
    record["command"] = command["argv"]
    folder.path.mkdir(parents=True, exist_ok=True)
    write_json(folder.record, record)
    return record


def add_command_timeline(folder: SweepFolder, times: dict[str, float]) -> None:
    """Add the command's timeline (epoch s: validated, Ray init / ready / down, Tune's fit called and returned,
    report written) to its entry in ``sweep.json``, for ``benchmarks/sweep_breakdown.py``."""
    record = read_json(folder.record)
    if record.get("commands"):
        record["commands"][-1]["timeline"] = dict(times)
        write_json(folder.record, record)
