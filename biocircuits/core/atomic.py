"""Atomic file writes: every file a run writes (checkpoint, history, summary, config, table, plot) goes through
[`atomic_write`][biocircuits.core.atomic.atomic_write], so a reader, a crash or a power cut sees the old file or the new
one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def temp_pattern(path: Path) -> str:
    """The glob of the temp files a write of ``path`` uses (``.<name>.<random>.tmp`` beside it)."""
    return f".{path.name}.*.tmp"


def clean_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temp files a killed write of ``path`` left behind (call it only where no other process is
    writing ``path``, e.g. under the run folder's lock); returns what was removed."""
    path = Path(path)
    stale = sorted(path.parent.glob(temp_pattern(path)))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX: fsync the directory; not possible on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a binary temp file in the same folder, which is flushed,
    fsync'd and renamed over ``path`` (``os.replace``), then the folder is fsync'd. If ``write`` (or anything
    after it) raises, the temp file is removed and ``path`` keeps its old content. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """[`atomic_write`][biocircuits.core.atomic.atomic_write] of ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """[`atomic_write`][biocircuits.core.atomic.atomic_write] of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any, **dumps: Any) -> Path:
    """[`atomic_write`][biocircuits.core.atomic.atomic_write] of ``json.dumps(data, indent=2, **dumps)`` and a final
    newline."""
    return atomic_write_text(path, json.dumps(data, **{"indent": 2, **dumps}) + "\n")
