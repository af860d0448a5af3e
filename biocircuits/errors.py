"""Errors a user can act on: every bad input names where it came from, what was expected and what was given."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable


class BiocircuitsError(Exception):
    """Base class of every error biocircuits raises on purpose."""


class ConfigError(BiocircuitsError, ValueError):
    """A bad spec, experiment, override or input.

    Renders as ``FILE: KEY.PATH: expected ..., given ... (suggestion)``; the CLI prints it and exits 2.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        file: str | None = None,
        expected: str | None = None,
        given: object = None,
        suggestion: str | None = None,
        has_given: bool | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.file = file
        self.expected = expected
        self.given = given
        self.has_given = given is not None if has_given is None else has_given
        self.suggestion = suggestion
        super().__init__(self.render())

    def with_file(self, file: str | None) -> ConfigError:
        """Return the same error, now naming ``file`` (kept if it already names one)."""
        if self.file is None and file is not None:
            self.file = str(file)
            self.args = (self.render(),)
        return self

    def render(self) -> str:
        where = ": ".join(p for p in (self.file, self.key) if p)
        text = f"{where}: {self.message}" if where else self.message
        if self.expected is not None:
            text += f"; expected {self.expected}"
        if self.has_given:
            text += f", given {short_repr(self.given)}"
        if self.suggestion:
            text += f" ({self.suggestion})"
        return text

    def __str__(self) -> str:
        return self.render()


class ConfigErrors(ConfigError):
    """Several config errors found at once, one per line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        ConfigError.__init__(self, "\n".join(e.render() for e in errors))

    def with_file(self, file: str | None) -> ConfigErrors:
        for e in self.errors:
            e.with_file(file)
        self.message = "\n".join(e.render() for e in self.errors)
        self.args = (self.message,)
        return self

    def render(self) -> str:
        return "\n".join(e.render() for e in getattr(self, "errors", [])) or self.message


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40


def short_repr(value: object) -> str:
    """``repr(value)`` cut to about 200 characters without building the whole repr first (a config value can be
    an alias-expanded structure of millions of items)."""
    text = _REPR.repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


class CheckpointError(BiocircuitsError):
    """A checkpoint that cannot be read: truncated, foreign, or from an incompatible run."""


class TrainingDiverged(BiocircuitsError):
    """The loss, a parameter or a buffer became NaN or infinite; no checkpoint with such values is written."""


class RunFolderError(ConfigError):
    """A run folder that cannot be used as asked: it holds another run, another process holds its lock, or it
    cannot be written. The CLI exits 2."""


def did_you_mean(given: str, choices: Iterable[str]) -> str | None:
    """A "did you mean ..." suggestion for a misspelt name, or ``None`` when nothing is close."""
    close = difflib.get_close_matches(str(given), list(choices), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


class DataError(ConfigError):
    """A data file that cannot be read (a corrupt image); the message names the file. Rebuilt from a DataLoader
    worker's text (which carries the worker's traceback), it keeps only the worker's own message."""

    def __init__(self, message: str, **kwargs: object) -> None:
        if "Original Traceback" in message:  # torch's ExceptionWrapper re-raises DataError(worker text)
            last = [line for line in message.splitlines() if line.strip()][-1]
            message = last.split(": ", 1)[1] if last.startswith(("biocircuits.", "DataError")) else last
        super().__init__(message, **kwargs)
