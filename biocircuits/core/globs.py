"""Layer-name globs (fnmatch over qualified module names) with errors that name the closest layers."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable

from biocircuits.errors import ConfigError


def match_any(name: str, patterns: Iterable[str]) -> bool:
    """True when ``name`` matches one of the fnmatch ``patterns``."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def check_patterns_match(
    patterns: Iterable[str], names: list[str], key: str, what: str = "convertible module", file: str | None = None
) -> None:
    """Raise a [`ConfigError`][biocircuits.errors.ConfigError] naming the closest names for a pattern that matches none
    of ``names``."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4)
            hint = (
                ("closest names: " + ", ".join(close))
                if close
                else ("names look like: " + ", ".join(names[:5]) if names else "the model has none")
            )
            raise ConfigError(f"pattern matches no {what}", key=key, given=pattern, suggestion=hint, file=file)
