"""Run logging: ``metrics.jsonl`` rows, ``summary.json``, ``audit.json``, the resolved ``config.yaml``, optional
TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from torch import nn

import biocircuits as bc
from biocircuits.core.atomic import atomic_write_json, atomic_write_text
from biocircuits.dale.audit import singular_values
from biocircuits.data.registry import DataBundle

from .run_folder import RunFolder


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


class RunLogger:
    """Appends one JSON object per line to ``metrics.jsonl`` (every row has ``step`` and ``kind``); mirrors
    scalars to TensorBoard when asked for and installed. Only rank 0 writes."""

    def __init__(self, folder: RunFolder, enabled: bool = True, tensorboard: bool = False) -> None:
        self.folder = folder
        self.enabled = enabled
        self.tb = None
        if enabled:
            folder.path.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(str(folder.tensorboard))
                except ImportError:
                    print("tensorboard is not installed: pip install tensorboard (logging to metrics.jsonl only)")

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint's step (they will be logged again)."""
        path = self.folder.metrics
        if not (self.enabled and path.exists()):
            return
        kept = [r for r in self.folder.read_metrics() if r.get("step", 0) <= step]  # a torn last line goes too
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, kind: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        row = {"step": step, "kind": kind, **_clean(values)}
        with open(self.folder.metrics, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float):
                    self.tb.add_scalar(
                        f"{kind}/{k}" if "layer" not in values else f"{kind}/{values['layer']}/{k}", v, step
                    )

    def write_json(self, path: Path, data: dict) -> None:
        """Write ``data`` to ``path`` (a file of the run folder) atomically; non-finite floats made JSON-safe."""
        if self.enabled:
            atomic_write_json(path, _clean(data))

    def write_config(self, config: dict) -> None:
        """Write the resolved ``config.yaml`` atomically; for a dataset other than ``synthetic``, a first comment
        line says that the synthetic settings in ``data`` are unused and where the real figures are."""
        if self.enabled:
            note = (
                ""
                if config.get("data", {}).get("name", "synthetic") == "synthetic"
                else (
                    "# data.shape, data.num_classes, data.train_size and data.val_size set the synthetic dataset only; "
                    "the data this run trained on (classes, input shape, sizes): dataset.json\n"
                )
            )
            atomic_write_text(self.folder.config, note + yaml.safe_dump(config, sort_keys=False))

    def append_history(self, entry: dict) -> None:
        if self.enabled:
            self.folder.append_history(entry)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def dataset_record(name: str, data: DataBundle, model_classes: int) -> dict[str, Any]:
    """What ``dataset.json`` holds: the dataset's name, its class count and names (as the labels index them), the
    model's output count, one input's shape (C, H, W), the sizes of both splits and the dataset's ``details``
    (image folders: crop size, validation layout, root)."""
    return {
        "name": name,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "model_num_classes": model_classes,
        "input_shape": list(data.input_shape),
        "train_samples": len(data.train),
        "val_samples": len(data.val),
        **data.details,
    }


def dale_audit(model: nn.Module, spectra: bool = True) -> dict[str, Any]:
    """What ``audit.json`` holds: the total of weights breaking Dale and, per constrained layer, its E/I counts of
    presynaptic units, its violations and (with ``spectra``: an SVD per layer, seconds for AlexNet's classifier)
    the singular values of its weight reshaped to (out, -1), descending (None when not computed or not finite)."""
    report = bc.audit(model, spectra=False)
    weights = {name: layer.weight.detach() for name, layer in bc.feedback_layers(model)}
    layers = []
    for row in report.layers:
        if row.constrained:
            sv = singular_values(weights[row.name]) if spectra and row.name in weights else None
            layers.append(
                {
                    "name": row.name,
                    "excitatory": row.excitatory,
                    "inhibitory": row.inhibitory,
                    "violations": row.violations,
                    "singular_values": None if sv is None else sv.tolist(),
                }
            )
    return {"violations": report.violations, "layers": layers}
