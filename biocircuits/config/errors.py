"""Turn pydantic validation errors into :class:`ConfigError` lines naming the key path and a suggestion."""

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
        if not nxt:
            break
        current = nxt
    return sorted({f for m in current for f in m.model_fields})


def key_path(loc: tuple) -> str:
    """('a', 0, 'b') -> 'a[0].b'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"str", "int", "float", "bool", "list", "dict", "function-after", "function-before",
                      "union", "literal", "tuple"} or "[" in str(part) or str(part)[:1].isupper():
            continue  # pydantic's union-branch markers (type and model names) are noise to a user
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


MAX_REPORTED = 20  # errors listed before "... and N more"


def from_validation_error(err: ValidationError, model: type[BaseModel], file: str | None = None) -> ConfigErrors:
    """One :class:`ConfigError` per distinct key path of ``err`` (first message kept)."""
    errors: list[ConfigError] = []
    seen: set[str] = set()
    raw = err.errors(include_url=False)
    keys = [key_path(tuple(e["loc"])) for e in raw]
    parents = {k[:i] for k in keys for i, c in enumerate(k) if c == "."}  # every proper dotted prefix, linear
    for e, key in zip(raw, keys, strict=True):
        loc = tuple(e["loc"])
        # a union's other branch ("should be a valid string") is noise when a deeper error explains it
        if key in seen or key in parents:
            continue
        if len(errors) == MAX_REPORTED:
            errors.append(ConfigError(f"... and {len(set(keys)) - MAX_REPORTED} more errors", file=file))
            break
        seen.add(key)
        raised = (e.get("ctx") or {}).get("error")
        if isinstance(raised, ConfigError):  # a validator's own error: its key is relative to where it ran
            inner = ".".join(k for k in (key if key != "(top level)" else "", raised.key or "") if k)
            errors.append(ConfigError(raised.message, key=inner or None, file=file, expected=raised.expected,
                                      given=raised.given, suggestion=raised.suggestion, has_given=raised.has_given))
            continue
        msg = e["msg"].removeprefix("Value error, ")
        given = e.get("input")
        if e["type"] == "extra_forbidden":
            name = str(loc[-1])
            valid = fields_at(model, loc[:-1])
            errors.append(ConfigError(
                "unknown key", key=key, file=file, expected="one of " + ", ".join(valid), given=name,
                suggestion=did_you_mean(name, valid), has_given=False,
            ))
            continue
        suggestion = None
        if e["type"] == "literal_error":
            choices = re.findall(r"'([^']*)'", str(e.get("ctx", {}).get("expected", "")))
            suggestion = did_you_mean(str(given), choices)
        errors.append(ConfigError(msg, key=key, file=file, given=given, suggestion=suggestion,
                                  has_given=e["type"] not in ("missing",) and "given" not in msg))
    return ConfigErrors(errors)
