"""``biocircuits report FOLDER...``: rebuild ``results.csv/json`` and ``summary.json/md`` from a sweep folder, a
compare folder, or run folders, reading only what the runs wrote."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from biocircuits.errors import ConfigError

from .figures import write_figures
from .folder import SweepFolder, read_json, write_json, write_text
from .results import run_row, sweep_rows, write_results
from .stats import markdown, summarise
from .table import markdown_table, provenance


def write_report(
    out: Path,
    rows: list[dict[str, Any]],
    metric: str,
    baseline: str | None,
    title: str,
    columns: dict[str, dict[str, Any]] | None = None,
    header: str | None = None,
) -> dict[str, Any]:
    """Write the results, the summary, the table (``table.md``: ``columns`` are the variants' extra cells,
    ``header`` the line above it) and the figures (``plots/``) of ``rows`` into ``out``; returns the summary."""
    write_results(out, rows)
    summary = summarise(rows, metric, baseline)
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", markdown(summary, title))
    write_text(out / "table.md", markdown_table(rows, metric, columns, header))
    write_figures(out, rows, summary)
    return summary


def sweep_settings(folder: SweepFolder, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A sweep folder's report settings: its ``metric``, ``baseline``, the variants' ``columns`` and the table's
    provenance line."""
    record = read_json(folder.record)
    sweep = record.get("sweep", {})
    return {
        "metric": sweep.get("metric", "val_acc1"),
        "baseline": sweep.get("baseline"),
        "columns": {v["name"]: v["columns"] for v in sweep.get("variants", []) if v.get("columns")},
        "header": provenance(record, rows),
    }


def folder_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of a sweep folder (with its ``metric`` and ``baseline``), a compare folder (variant = its label) or a
    run folder (variant = its rule)."""
    if SweepFolder(path).is_sweep():
        rows, _ = sweep_rows(SweepFolder(path))
        return rows, sweep_settings(SweepFolder(path), rows)
    if (path / "compare.json").is_file():  # {run folder: its summary, with its variant when seeds were given}
        runs = read_json(path / "compare.json")
        return [run_row(path / name, runs[name].get("variant") or name) for name in runs], {}
    if (path / "config.yaml").is_file():
        return [run_row(path)], {}
    raise ConfigError(
        "not a sweep, compare or run folder",
        key="FOLDER",
        given=str(path),
        expected="a folder holding sweep.json, compare.json or a run's config.yaml",
    )


def report(
    folders: list[str | Path], output: str | Path | None = None, metric: str | None = None, baseline: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Collect every folder's rows, then write them (into ``output``; default: the folder itself when there is one,
    else the run folders' common parent); returns where and the summary."""
    paths = [Path(f) for f in folders]
    rows, settings = [], {}
    for path in paths:
        found, found_settings = folder_rows(path)
        rows += found
        settings = settings or found_settings
    metric = metric or settings.get("metric", "val_acc1")
    if metric not in {"val_acc1", "val_acc5", "val_loss", "best_val_acc1", "best_val_loss"}:
        raise ConfigError(
            "not a summarised figure",
            key="--metric",
            given=metric,
            expected="val_acc1, val_acc5, val_loss, best_val_acc1 or best_val_loss",
        )
    base = baseline or settings.get("baseline")
    if base is not None and base not in {str(r["variant"]) for r in rows}:
        raise ConfigError(
            "the baseline is no variant of these runs",
            key="--baseline",
            given=base,
            expected="one of " + ", ".join(sorted({str(r["variant"]) for r in rows})),
        )
    out = (
        Path(output)
        if output
        else paths[0]
        if len(paths) == 1 and not (paths[0] / "config.yaml").is_file()
        else Path(os.path.commonpath([p.resolve().parent for p in paths]))
    )
    out.mkdir(parents=True, exist_ok=True)
    return out, write_report(
        out,
        rows,
        metric,
        base,
        title=f"{out.name}: {metric}",
        columns=settings.get("columns"),
        header=settings.get("header"),
    )
