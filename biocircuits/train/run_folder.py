"""The files of a run folder (what ``biocircuits run`` writes) and of a comparison folder, named in one place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class RunFolder:
    """``runs/<name>/``: ``config.yaml`` (resolved config), ``metrics.jsonl`` (one row per line, each with ``step``
    and ``kind``), ``checkpoint.pt`` (latest), ``summary.json`` (final figures), ``audit.json`` (Dale audit and
    weight spectra, when Dale is on), ``plots/*.png``, ``tensorboard/`` and ``pathway_*`` reports."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def audit(self) -> Path:
        return self.path / "audit.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def name(self) -> str:
        return self.path.name

    def pathway(self, layer: str, mode: str, dale: bool) -> Path:
        """The stem (no suffix) of a ``check-pathway`` report on ``layer``: add ``.json`` or ``.png``."""
        return self.path / f"pathway_{layer.replace('.', '_')}_{mode}{'_dale' if dale else ''}"

    def exists(self) -> bool:
        return self.path.is_dir()

    def is_run(self) -> bool:
        """True once a run has started here (its resolved ``config.yaml`` is written first)."""
        return self.config.is_file()

    def read_config(self) -> dict[str, Any]:
        """The resolved config as a dict ({} when there is none)."""
        if not self.config.is_file():
            return {}
        return yaml.safe_load(self.config.read_text()) or {}

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every row of ``metrics.jsonl`` ([] when there is none)."""
        if not self.metrics.is_file():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def read_summary(self) -> dict[str, Any]:
        return _read_json(self.summary)

    def read_audit(self) -> dict[str, Any]:
        return _read_json(self.audit)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"


class CompareFolder:
    """What ``biocircuits compare`` writes: one run folder per variant (``<label>/``), the table (``compare.md``,
    ``compare.json``) and ``plots/``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def run(self, label: str) -> RunFolder:
        return RunFolder(self.path / label)

    @property
    def compare_md(self) -> Path:
        return self.path / "compare.md"

    @property
    def compare_json(self) -> Path:
        return self.path / "compare.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when the file is missing)."""
    return json.loads(path.read_text()) if path.is_file() else {}
