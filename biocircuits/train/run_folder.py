"""The files of a run folder (what ``biocircuits run`` writes) and of a comparison folder, named in one place."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from biocircuits.config.loading import parse_yaml_text
from biocircuits.core.atomic import atomic_write_json
from biocircuits.errors import ConfigError


class RunFolder:
    """``runs/<name>/``: ``config.yaml`` (resolved config), ``metrics.jsonl`` (one row per line, each with ``step``
    and ``kind``), ``checkpoint.pt`` (latest), ``summary.json`` (final figures), ``dataset.json`` (the data the
    run trained on: classes, input shape, sizes), ``audit.json`` (Dale audit and weight spectra, when Dale is on),
    ``history.json`` (starts and resumes, with the settings each changed),
    ``plots/*.png``, ``tensorboard/`` and ``pathway_*`` reports; ``.lock`` is held while a process writes here."""

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
    def dataset(self) -> Path:
        return self.path / "dataset.json"

    @property
    def audit(self) -> Path:
        return self.path / "audit.json"

    @property
    def history(self) -> Path:
        return self.path / "history.json"

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
        try:
            text = self.config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"unreadable resolved config ({type(err).__name__})",
                file=str(self.config),
                suggestion="restore the file, or start a fresh run",
            ) from None
        data = parse_yaml_text(text, file=str(self.config))
        if not isinstance(data, dict):
            raise ConfigError(
                "the resolved config is not a mapping",
                file=str(self.config),
                expected="a mapping",
                given=type(data).__name__,
                suggestion="restore the file, or start a fresh run",
            )
        return data

    def read_metrics(self, report: bool = True) -> list[dict[str, Any]]:
        """Every row of ``metrics.jsonl`` ([] when there is none). A torn last line (a write cut short by a full
        disk or a kill) is skipped, and reported on stderr when ``report``; a bad line elsewhere is an error."""
        if not self.metrics.is_file():
            return []
        lines = self.metrics.read_bytes().decode("utf-8", errors="replace").splitlines()
        numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
        rows = []
        for n, (i, line) in enumerate(numbered):
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError:
                if n == len(numbered) - 1:
                    if report:
                        print(
                            f"warning: {self.metrics}: line {i}: skipped a torn last line ({len(line)} "
                            "characters; a write cut short)",
                            file=sys.stderr,
                        )
                    break
                raise ConfigError(
                    f"line {i} is not a JSON object",
                    file=str(self.metrics),
                    key=f"line {i}",
                    suggestion="remove the line, or restore the file",
                ) from None
            rows.append(row)
        return rows

    def read_history(self) -> list[dict[str, Any]]:
        """The run's events (``start``, ``resume``) in order ([] when there is none)."""
        data = _read_json(self.history) if self.history.is_file() else {}
        return list(data.get("history", []))

    def append_history(self, entry: dict[str, Any]) -> None:
        """Add one event to ``history.json`` (written atomically)."""
        data = {"history": [*self.read_history(), entry]}
        atomic_write_json(self.history, data)

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
    """The JSON object in ``path`` ({} when the file is missing); a damaged file is a ConfigError naming it."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, OSError) as err:
        raise ConfigError(
            f"unreadable JSON ({type(err).__name__})",
            file=str(path),
            suggestion="restore the file, or rerun the run's last step",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("not a JSON object", file=str(path), given=type(data).__name__)
    return data
