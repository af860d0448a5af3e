"""YAML loading with ``include:`` (later entries override earlier ones) and ``--set key=value`` overrides; the
files themselves are read within the input limits by [`yaml_input`][biocircuits.config.yaml_input]."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from biocircuits.errors import ConfigError
from biocircuits.presets import presets_root

# The input limits and the YAML readers live in yaml_input (re-exported: they have always been imported from here).
from .yaml_input import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, MAX_KEYS, MAX_NODES, parse_yaml_text, read_yaml

# The folder holding the shipped presets (constraints/, experiments/): the repository root in a source checkout
# or an editable install, biocircuits/presets/ in an installed wheel.
PACKAGE_ROOT = presets_root()

INTERNAL_KEYS = ("source",)  # set by the loader, never by a file

__all__ = [
    "INTERNAL_KEYS",
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_KEYS",
    "MAX_NODES",
    "PACKAGE_ROOT",
    "apply_sets",
    "deep_merge",
    "load_with_includes",
    "parse_set",
    "parse_yaml_text",
    "read_yaml",
    "resolve_path",
]


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
    candidates = (
        [name]
        if name.is_absolute()
        else [
            *([relative_to / name] if relative_to else []),
            Path.cwd() / name,
            PACKAGE_ROOT / folder / name,
            PACKAGE_ROOT / name,
        ]
    )
    for c in candidates:
        if c.is_file():
            return c
        if c.suffix == "" and c.with_suffix(".yaml").is_file():
            return c.with_suffix(".yaml")
    return None


def _reject_internal_keys(data: dict[str, Any], file: str) -> None:
    """``source`` is set by the loader (the file a spec came from); a file may not set it."""
    inline = data.get("constraints")
    for where, mapping in (("", data), ("constraints.", inline if isinstance(inline, dict) else {})):
        for key in INTERNAL_KEYS:
            if key in mapping:
                raise ConfigError(
                    "internal key, set by biocircuits itself",
                    file=file,
                    key=where + key,
                    expected="no such key in a file",
                    suggestion=f"remove {where + key}",
                )


def _include_roots(top: Path, folder: str) -> list[Path]:
    """Where included files may live: the top-level file's folder tree, and the shipped presets."""
    return [
        top.parent,
        (PACKAGE_ROOT / folder).resolve(),
        (PACKAGE_ROOT / "constraints").resolve(),
        (PACKAGE_ROOT / "experiments").resolve(),
    ]


def load_with_includes(path: str | Path, folder: str = "constraints", _stack: tuple[Path, ...] = ()) -> dict:
    """Read ``path`` and merge its ``include:`` files under it (each included file first, in order).

    An include is a relative path without ``..``; it must resolve (symlinks followed) inside the folder tree of
    the top-level file or inside the shipped ``constraints/`` or ``experiments/`` presets."""
    path = Path(path).resolve()
    if path in _stack:
        raise ConfigError(
            "include cycle", file=str(path), key="include", given=" -> ".join(p.name for p in (*_stack, path))
        )
    data = read_yaml(path)
    _reject_internal_keys(data, str(path))
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ConfigError(
            "include must be a list of file paths",
            file=str(path),
            key="include",
            expected="a list of paths",
            given=includes,
        )
    roots = _include_roots(_stack[0] if _stack else path, folder)
    merged: dict[str, Any] = {}
    for i, inc in enumerate(includes):
        real = _find_include(inc, f"include[{i}]", path, roots, folder)
        merged = deep_merge(merged, load_with_includes(real, folder, (*_stack, path)))
    return deep_merge(merged, data)


def _find_include(inc: Any, key: str, path: Path, roots: list[Path], folder: str) -> Path:
    """The real path of the include ``inc`` (entry ``key`` of ``path``'s ``include:``): a relative path without
    ``..`` that resolves ([`resolve_path`][biocircuits.config.loading.resolve_path]) inside one of ``roots``."""
    if not isinstance(inc, str) or not inc.strip():
        raise ConfigError(
            "an include must be a file path", file=str(path), key=key, expected="a relative path", given=inc
        )
    if Path(inc).is_absolute() or ".." in Path(inc).parts:
        raise ConfigError(
            "an include must be a relative path without '..'",
            file=str(path),
            key=key,
            expected=f"a path inside {roots[0]} or a preset name from {folder}/",
            given=inc,
            suggestion="copy the file beside the spec, or name a shipped preset",
        )
    found = resolve_path(inc, path.parent, folder)
    if found is None:
        raise ConfigError(
            "included file not found",
            file=str(path),
            key=key,
            given=inc,
            suggestion=f"paths are relative to {path.parent} or to {folder}/",
        )
    real = found.resolve()
    if not any(real.is_relative_to(root) for root in roots):
        raise ConfigError(
            "included file lies outside the spec's folder tree and the presets",
            file=str(path),
            key=key,
            expected=f"a file under {roots[0]} or {roots[1]}",
            given=str(real),
            suggestion="copy the file beside the spec",
        )
    return real


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a.b": 3, "c": [1, 2]}``: dotted keys to values parsed as YAML (within
    the input limits; text that is not YAML stays a string)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(
                "--set takes dotted.key=value",
                key="--set",
                expected="KEY=VALUE",
                given=item,
                suggestion="e.g. --set train.epochs=2",
            )
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part.strip() for part in key.split(".")):
            raise ConfigError(
                "--set key is empty or has an empty part",
                key="--set",
                given=item,
                expected="KEY=VALUE with a dotted KEY",
                suggestion="e.g. --set train.epochs=2",
            )
        if key.split(".")[-1] in INTERNAL_KEYS or key == "include":
            raise ConfigError(
                "internal key, set by biocircuits itself",
                key=f"--set {key}",
                expected="a config key",
                given=key,
                suggestion="remove this --set",
            )
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(
                "--set value too long",
                key=f"--set {key}",
                expected=f"at most {MAX_FILE_BYTES} characters",
                given=f"{len(raw)} characters",
            )
        try:
            out[key] = parse_yaml_text(raw, key=key) if raw.strip() else None
        except ConfigError as err:
            if not err.message.startswith(("YAML syntax error", "unreadable YAML value")):
                raise ConfigError(
                    err.message,
                    key=f"--set {key}",
                    expected=err.expected,
                    given=err.given,
                    has_given=err.has_given,
                    suggestion=err.suggestion,
                ) from None
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
                raise ConfigError(
                    "--set goes inside a value that is not a mapping",
                    key=".".join(parts[: i + 1]),
                    given=child,
                    suggestion=f"set {'.'.join(parts[: i + 1])} itself",
                )
            node = child
        node[parts[-1]] = value
    return out
