"""``table.md``: the results table the project's docs quote (``docs/results.md``), one row per variant: the mean and
spread (min-max) of the metric over its finished trials, how many trials it has, each seed's value (or what became
of that trial: ``diverged``, ``failed``, ``stopped``, ...), and the variant's own ``columns`` from the sweep file
(e.g. published figures). A line above it says where the figures come from: the sweep file, engine, machine and
wall time."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def finished_value(row: dict[str, Any], metric: str) -> float | None:
    """The trial's ``metric`` when it finished with a finite one, else None."""
    value = row.get(metric)
    if row["status"] == "finished" and isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def seed_cell(row: dict[str, Any], metric: str) -> str:
    """One seed's entry: its value to 0.1, or what became of the trial."""
    value = finished_value(row, metric)
    if value is not None:
        return f"{value:.1f}"
    if row["status"] == "failed" and str(row.get("reason") or "").startswith("TrainingDiverged"):
        return "diverged"
    return str(row["status"])


def table_rows(rows: list[dict[str, Any]], metric: str) -> dict[str, dict[str, Any]]:
    """Per variant (in row order): the finished values, their mean, min and max, the trial count and the per-seed
    cells (by seed)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row["variant"]), []).append(row)
    out = {}
    for label, members in groups.items():
        members = sorted(members, key=lambda r: (r["seed"] is None, r["seed"] if r["seed"] is not None else 0))
        done = [v for v in (finished_value(r, metric) for r in members) if v is not None]
        out[label] = {
            "values": done,
            "mean": sum(done) / len(done) if done else None,
            "min": min(done, default=None),
            "max": max(done, default=None),
            "n": len(members),
            "per_seed": [seed_cell(r, metric) for r in members],
        }
    return out


def provenance(record: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """Where a sweep's figures come from: its file, engine, machine and wall time (first start to last finish, and
    summed over the trials)."""
    path = record.get("sweep_file", "?")
    try:
        rel = os.path.relpath(path)
        path = rel if not rel.startswith("..") else path
    except ValueError:
        pass
    m = record.get("machine", {})
    starts = [r["started_at"] for r in rows if r.get("started_at")]
    ends = [r["finished_at"] for r in rows if r.get("finished_at")]
    span = (max(ends) - min(starts)) / 60 if starts and ends else None
    summed = sum(r["wall_s"] for r in rows if isinstance(r.get("wall_s"), int | float)) / 60
    finished = sum(r["status"] == "finished" for r in rows)
    wall = f"wall time {span:.1f} min (first start to last finish), " if span is not None else ""
    return (
        f"Sweep: `{Path(path).as_posix()}` on {record.get('engine', '?')} {record.get('engine_version', '')}; "
        f"machine: {m.get('platform', '?')}, {m.get('cpus', '?')} CPUs, torch {m.get('torch', '?')}; "
        f"{len(rows)} trials ({finished} finished); {wall}{summed:.1f} min summed over the trials."
    )


def markdown_table(
    rows: list[dict[str, Any]], metric: str, columns: dict[str, dict[str, Any]] | None = None, header: str | None = None
) -> str:
    """The table (with ``header`` above it): ``| variant | <metric> mean | spread (min-max) | seeds | per seed |``
    and one more column per title in ``columns`` (variant -> {title: text})."""
    columns = columns or {}
    titles = list(dict.fromkeys(t for cells in columns.values() for t in cells))
    lines = [header, ""] if header else []
    lines += [
        f"| variant | {metric} mean | spread (min-max) | seeds | per seed |" + "".join(f" {t} |" for t in titles),
        "|---|---:|---:|---:|---|" + "---|" * len(titles),
    ]
    for label, v in table_rows(rows, metric).items():
        stats = f"{v['mean']:.2f} | {v['min']:.2f}-{v['max']:.2f}" if v["values"] else "- | -"
        extra = "".join(f" {columns.get(label, {}).get(t, '-')} |" for t in titles)
        lines.append(f"| {label} | {stats} | {v['n']} | {', '.join(v['per_seed'])} |{extra}")
    return "\n".join(lines) + "\n"
