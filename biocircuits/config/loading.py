"""YAML loading with ``include:`` (later entries override earlier ones) and ``--set key=value`` overrides."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from biocircuits.errors import ConfigError
from biocircuits.presets import presets_root

# The folder holding the shipped presets (constraints/, experiments/): the repository root in a source checkout
# or an editable install, biocircuits/presets/ in an installed wheel.
PACKAGE_ROOT = presets_root()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file into a mapping; a missing file, a syntax error or a non-mapping is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", file=str(path), suggestion="check the path and the working directory")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"YAML syntax error{where}: {problem}", file=str(path),
                          suggestion="check indentation, colons and quotes") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping of keys", file=str(path), expected="a mapping",
                          given=type(data).__name__)
    return data


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge mappings recursively; ``top`` wins on conflicts; lists and scalars are replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_path(name: str | Path, relative_to: Path | None, folder: str) -> Path | None:
    """Find the YAML file ``name`` refers to; None when there is none. Lookup order (the first file found wins):

    1. ``name`` itself when it is an absolute path;
    2. beside the referencing file: ``relative_to / name`` (an ``include:`` or an experiment's ``constraints:``);
    3. the working directory: ``cwd / name``;
    4. the shipped presets: ``PACKAGE_ROOT / folder / name``, then ``PACKAGE_ROOT / name`` (so both
       ``sign_symmetry.yaml`` and ``constraints/sign_symmetry.yaml`` work from any directory).

    At each step a name without a suffix also matches ``name.yaml`` (``"sign_symmetry"``)."""
    name = Path(name)
    candidates = [name] if name.is_absolute() else [
        *([relative_to / name] if relative_to else []), Path.cwd() / name, PACKAGE_ROOT / folder / name,
        PACKAGE_ROOT / name,
    ]
    for c in candidates:
        if c.is_file():
            return c
        if c.suffix == "" and c.with_suffix(".yaml").is_file():
            return c.with_suffix(".yaml")
    return None


def load_with_includes(path: str | Path, folder: str = "constraints", _stack: tuple[Path, ...] = ()) -> dict:
    """Read ``path`` and merge its ``include:`` files under it (each included file first, in order)."""
    path = Path(path).resolve()
    if path in _stack:
        raise ConfigError("include cycle", file=str(path), key="include",
                          given=" -> ".join(p.name for p in (*_stack, path)))
    data = read_yaml(path)
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ConfigError("include must be a list of file paths", file=str(path), key="include",
                          expected="a list of paths", given=includes)
    merged: dict[str, Any] = {}
    for i, inc in enumerate(includes):
        found = resolve_path(str(inc), path.parent, folder) if isinstance(inc, str) else None
        if found is None:
            raise ConfigError("included file not found", file=str(path), key=f"include[{i}]", given=inc,
                              suggestion=f"paths are relative to {path.parent} or to {folder}/")
        merged = deep_merge(merged, load_with_includes(found, folder, (*_stack, path)))
    return deep_merge(merged, data)


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a.b": 3, "c": [1, 2]}``: dotted keys to values parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError("--set takes dotted.key=value", key="--set", expected="KEY=VALUE", given=item,
                              suggestion="e.g. --set train.epochs=2")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError("--set key is empty or has an empty part", key="--set", given=item)
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key] = raw
    return out


def apply_sets(data: dict[str, Any], sets: dict[str, Any]) -> dict[str, Any]:
    """Set each dotted key of ``sets`` in a copy of ``data`` (the value replaces what was there)."""
    out = copy.deepcopy(data)
    for key, value in sets.items():
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError("--set goes inside a value that is not a mapping", key=".".join(parts[: i + 1]),
                                  given=child, suggestion=f"set {'.'.join(parts[: i + 1])} itself")
            node = child
        node[parts[-1]] = value
    return out
