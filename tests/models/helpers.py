"""A user's own module written to a temporary folder on ``sys.path`` (a fresh name per test: nothing cached)."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

_count = itertools.count()


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, on_path: bool = True) -> str:
    """Write ``source`` as a new module in ``tmp_path`` (put on ``sys.path`` unless ``on_path`` is False); its
    name, removed from ``sys.modules`` after the test."""
    name = f"user_plugin_{next(_count)}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    if on_path:
        monkeypatch.syspath_prepend(str(tmp_path))
    else:  # biocircuits may add the folder itself: restore sys.path after the test
        monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name
