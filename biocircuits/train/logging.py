"""Run logging: ``metrics.jsonl`` rows, ``summary.json``, the resolved ``config.yaml``, optional TensorBoard."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


class RunLogger:
    """Appends one JSON object per line to ``metrics.jsonl`` (every row has ``step`` and ``kind``); mirrors
    scalars to TensorBoard when asked for and installed. Only rank 0 writes."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.tb = None
        if enabled:
            run_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                    self.tb = SummaryWriter(str(run_dir / "tensorboard"))
                except ImportError:
                    print("tensorboard is not installed: pip install tensorboard (logging to metrics.jsonl only)")

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint's step (they will be logged again)."""
        path = self.run_dir / "metrics.jsonl"
        if not (self.enabled and path.exists()):
            return
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [r for r in rows if json.loads(r).get("step", 0) <= step]
        path.write_text("".join(r + "\n" for r in kept))

    def log(self, kind: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        row = {"step": step, "kind": kind, **_clean(values)}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float):
                    self.tb.add_scalar(f"{kind}/{k}" if "layer" not in values else f"{kind}/{values['layer']}/{k}",
                                       v, step)

    def write_json(self, name: str, data: dict) -> None:
        if self.enabled:
            tmp = self.run_dir / f".{name}.tmp"
            tmp.write_text(json.dumps(_clean(data), indent=2) + "\n")
            os.replace(tmp, self.run_dir / name)

    def write_config(self, config: dict) -> None:
        if self.enabled:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of a run's ``metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
