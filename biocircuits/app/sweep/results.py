"""The results of a sweep (or of compare / run folders): one row per trial, read back from its run folder
(``trial.json``, ``summary.json``, ``metrics.jsonl``, ``config.yaml``), written as ``results.csv`` and
``results.json``."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import yaml

from .folder import TRIAL_FILE, SweepFolder, read_json, write_json, write_text

FIGURES = ("val_acc1", "val_acc5", "val_loss", "best_val_acc1", "best_val_loss", "steps", "wall_s")
FIXED = ("trial", "variant", "seed", "status", "reason", *FIGURES, "started_at", "finished_at", "run_dir")


def val_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The ``val`` rows of a run's ``metrics.jsonl`` (unreadable lines skipped)."""
    path, rows = run_dir / "metrics.jsonl", []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("kind") == "val":
            rows.append(row)
    return rows


def figures(run_dir: Path) -> dict[str, Any]:
    """Final and best validation figures, steps and wall time of one run folder (None where there are none)."""
    summary, vals = read_json(run_dir / "summary.json"), val_rows(run_dir)
    last = vals[-1] if vals else {}
    finite = [v for v in vals if all(math.isfinite(v.get(k, math.nan)) for k in ("acc1", "loss"))]
    return {
        "val_acc1": summary.get("val_acc1", last.get("acc1")),
        "val_acc5": summary.get("val_acc5", last.get("acc5")),
        "val_loss": summary.get("val_loss", last.get("loss")),
        "best_val_acc1": max((v["acc1"] for v in finite), default=None),
        "best_val_loss": min((v["loss"] for v in finite), default=None),
        "steps": summary.get("steps", last.get("step")),
        "wall_s": summary.get("wall_s"),
    }


def trial_row(run_dir: Path, axes: list[str]) -> dict[str, Any]:
    """One results row: the trial's place (``trial.json``), its status and its figures."""
    state = read_json(run_dir / TRIAL_FILE)
    values = state.get("values", {})
    row = {
        "trial": state.get("trial", run_dir.name),
        "variant": state.get("variant"),
        "seed": state.get("seed"),
        **{k: values.get(k) for k in axes},
        "status": state.get("status", "pending"),
        "reason": state.get("reason"),
        **figures(run_dir),
        "started_at": state.get("started_at"),
        "finished_at": state.get("finished_at"),
        "run_dir": str(run_dir),
    }
    return row


def run_row(run_dir: Path, label: str | None = None) -> dict[str, Any]:
    """A results row for a plain run folder (compare's or ``biocircuits run``'s): its variant is ``label`` (or its
    rule), its seed is ``train.seed`` from its ``config.yaml``."""
    config = {}
    if (run_dir / "config.yaml").is_file():
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    summary = read_json(run_dir / "summary.json")
    status = "finished" if summary else ("interrupted" if (run_dir / "checkpoint.pt").is_file() else "pending")
    return {
        "trial": run_dir.name,
        "variant": label or summary.get("rule") or run_dir.name,
        "seed": config.get("train", {}).get("seed"),
        "status": status,
        "reason": summary.get("stopped_early"),
        **figures(run_dir),
        "started_at": None,
        "finished_at": None,
        "run_dir": str(run_dir),
    }


def sweep_rows(folder: SweepFolder) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per trial listed in ``sweep.json``, in sweep order, then the trials a search added as it ran (by
    name); and the sweep file's mapping."""
    record = read_json(folder.record)
    sweep = record.get("sweep", {})
    axes = [*((sweep.get("search") or {}).get("space") or {}), *sweep.get("axes", {})]
    planned = record.get("trials", [])
    ids = planned + [tid for tid in folder.trial_ids() if tid not in set(planned)]
    return [trial_row(folder.trial(tid), axes) for tid in ids], sweep


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    """``results.json`` (a list of rows) and ``results.csv`` (the same rows; axis columns between seed and
    status)."""
    write_json(out / "results.json", rows)
    columns = list(FIXED)
    for row in rows:
        for key in row:
            if key not in columns:
                columns.insert(columns.index("status"), key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    write_text(out / "results.csv", buffer.getvalue())


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else ("" if value is None else value)
