"""Turn pydantic validation errors into [`ConfigError`][biocircuits.errors.ConfigError] lines naming the key path and a
suggestion."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from biocircuits.errors import ConfigError, ConfigErrors, did_you_mean


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            out += _models_in(arg)
    return out


def fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (sub)model reached by ``loc`` from ``model`` (for "did you mean")."""
    current = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            field = m.model_fields.get(str(part))
            if field is not None:
                nxt += _models_in(field.annotation)
        if nxt:  # else a union marker or a key of a dict field: the same models hold the next key
            current = nxt
    return sorted({f for m in current for f in m.model_fields})


_MARKERS = {
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "function-after",
    "function-before",
    "union",
    "literal",
    "tuple",
}
_NO_INPUT = object()


def _looks_like_marker(part: object) -> bool:
    """pydantic's union-branch markers in a ``loc``: type names, model names, ``function-after[...]``."""
    return part in _MARKERS or "[" in str(part) or str(part)[:1].isupper()


def key_path(loc: tuple, data: Any = _NO_INPUT) -> str:
    """('a', 0, 'b') -> 'a[0].b', without pydantic's union-branch markers (noise to a user).

    With ``data`` (the validated input), a part that is a key (or index) of the input at that point is the user's
    and always kept, whatever its spelling (``Steps``, ``int``, a glob ``[02]``); the others, and every part once the
    path has left the input (a value a validator rewrote), are kept unless they look like a marker."""
    out, node = "", data
    for part in loc:
        if (
            isinstance(node, dict)
            and part in node
            or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        ):
            node = node[part]
        elif _looks_like_marker(part) and not isinstance(part, int):
            continue
        else:
            node = _NO_INPUT
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def _full_key(error: dict, data: Any) -> str:
    """The key path of one pydantic error; a validator's own [`ConfigError`][biocircuits.errors.ConfigError] names a key
    relative to where it ran, appended here (so that a union's other branch, failing at the parent key, counts as
    noise)."""
    key = key_path(tuple(error["loc"]), data)
    raised = (error.get("ctx") or {}).get("error")
    if isinstance(raised, ConfigError) and raised.key:
        return raised.key if key == "(top level)" else f"{key}.{raised.key}"
    return key


MAX_REPORTED = 20  # errors listed before "... and N more"


def from_validation_error(
    err: ValidationError, model: type[BaseModel], file: str | None = None, data: Any = _NO_INPUT
) -> ConfigErrors:
    """One [`ConfigError`][biocircuits.errors.ConfigError] per distinct key path of ``err`` (first message kept);
    ``data``, the input that was validated, tells the user's keys from pydantic's markers (see
    [`key_path`][biocircuits.config.errors.key_path])."""
    errors: list[ConfigError] = []
    seen: set[str] = set()
    raw = err.errors(include_url=False)
    keys = [_full_key(e, data) for e in raw]
    parents = {k[:i] for k in keys for i, c in enumerate(k) if c == "."}  # every proper dotted prefix, linear
    for e, key in zip(raw, keys, strict=True):
        # a union's other branch ("should be a valid string") is noise when a deeper error explains it
        if key in seen or key in parents:
            continue
        if len(errors) == MAX_REPORTED:
            errors.append(ConfigError(f"... and {len(set(keys)) - MAX_REPORTED} more errors", file=file))
            break
        seen.add(key)
        errors.append(_config_error(e, key, model, file))
    return ConfigErrors(errors)


def _config_error(e: dict, key: str, model: type[BaseModel], file: str | None) -> ConfigError:
    """The [`ConfigError`][biocircuits.errors.ConfigError] for one pydantic error at ``key``: a validator's own error
    as raised (its key made whole by ``_full_key``), an unknown key with the valid ones and a guess, or pydantic's
    message (with a guess among a literal's choices)."""
    raised = (e.get("ctx") or {}).get("error")
    if isinstance(raised, ConfigError):
        return ConfigError(
            raised.message,
            key=None if key == "(top level)" else key,
            file=file,
            expected=raised.expected,
            given=raised.given,
            suggestion=raised.suggestion,
            has_given=raised.has_given,
        )
    msg = e["msg"].removeprefix("Value error, ")
    given = e.get("input")
    if e["type"] == "extra_forbidden":
        loc = tuple(e["loc"])
        name = str(loc[-1])
        valid = fields_at(model, loc[:-1])
        return ConfigError(
            "unknown key",
            key=key,
            file=file,
            expected="one of " + ", ".join(valid),
            given=name,
            suggestion=did_you_mean(name, valid),
            has_given=False,
        )
    suggestion = None
    if e["type"] == "literal_error":
        choices = re.findall(r"'([^']*)'", str(e.get("ctx", {}).get("expected", "")))
        suggestion = did_you_mean(str(given), choices)
    return ConfigError(
        msg,
        key=key,
        file=file,
        given=given,
        suggestion=suggestion,
        has_given=e["type"] not in ("missing",) and "given" not in msg,
    )
