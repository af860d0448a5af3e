"""YAML loading with ``include:`` (later entries override earlier ones) and ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from biocircuits.errors import ConfigError
from biocircuits.presets import presets_root

# The folder holding the shipped presets (constraints/, experiments/): the repository root in a source checkout
# or an editable install, biocircuits/presets/ in an installed wheel.
PACKAGE_ROOT = presets_root()


# Input limits, checked before pydantic sees a value (a YAML alias bomb expands to gigabytes otherwise).
MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest shipped spec is a few kB
MAX_DEPTH = 32  # nesting of mappings and lists, counted with aliases expanded
MAX_ALIASES = 100  # ``*name`` references
MAX_NODES = 100_000  # values, counted with aliases expanded
MAX_KEYS = 10_000  # mapping keys, counted with aliases expanded
INTERNAL_KEYS = ("source",)  # set by the loader, never by a file


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that stops at [`MAX_DEPTH`][biocircuits.config.loading.MAX_DEPTH] nesting and
    [`MAX_ALIASES`][biocircuits.config.loading.MAX_ALIASES] aliases while it composes the node graph (before any Python
    object is built)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Limit(
                    f"more than {MAX_ALIASES} aliases",
                    f"at most {MAX_ALIASES} aliases (*name)",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Limit(
                    f"nested deeper than {MAX_DEPTH} levels",
                    f"at most {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Limit(Exception):
    def __init__(self, message: str, expected: str, mark: yaml.Mark | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.message, self.expected, self.mark, self.key = message, expected, mark, key


def _measure(
    node: yaml.Node, path: str, memo: dict[int, tuple[int, int, int]], stack: set[int]
) -> tuple[int, int, int]:
    """(values, keys, depth) of ``node`` with every alias expanded, memoised per node so an alias bomb costs time
    linear in its text; raises [`_Limit`][biocircuits.config.loading._Limit] on a duplicate key or a recursive alias."""
    if id(node) in memo:
        return memo[id(node)]
    if id(node) in stack:
        raise _Limit(
            "a recursive alias (a value that contains itself)", "no recursive aliases", node.start_mark, path or None
        )
    stack.add(id(node))
    nodes, keys, depth = 1, 0, 0
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                name = key_node.value
                if name in seen:
                    raise _Limit(
                        f"duplicate key {name[:60]!r}",
                        "each key once per mapping",
                        key_node.start_mark,
                        f"{path}.{name}" if path else name,
                    )
                seen.add(name)
            else:
                name = "?"
            for child, sub in ((key_node, path), (value_node, f"{path}.{name}" if path else str(name))):
                n, k, d = _measure(child, sub, memo, stack)
                nodes, keys, depth = nodes + n, keys + k, max(depth, d)
            keys += 1
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            n, k, d = _measure(child, f"{path}[{i}]", memo, stack)
            nodes, keys, depth = nodes + n, keys + k, max(depth, d)
    stack.discard(id(node))
    depth += 1 if isinstance(node, yaml.CollectionNode) else 0
    for count, limit, what in ((nodes, MAX_NODES, "values"), (keys, MAX_KEYS, "keys"), (depth, MAX_DEPTH, "levels")):
        if count > limit:
            expanded = "nested" if what == "levels" else "holds"
            raise _Limit(
                f"{expanded} more than {limit} {what} once its aliases are expanded",
                f"at most {limit} {what}",
                node.start_mark,
                path or None,
            )
    memo[id(node)] = (nodes, keys, depth)
    return nodes, keys, depth


def _check_finite(value: Any, path: str) -> None:
    """Reject ``.inf`` and ``.nan`` anywhere: no setting of biocircuits means infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            "not a finite number",
            key=path or None,
            expected="a finite number",
            given=value,
            suggestion="use a large finite value, or leave the key out for the default",
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


def parse_yaml_text(text: str, file: str | None = None, key: str | None = None) -> Any:
    """Parse YAML text within the input limits (depth, aliases, values, keys; no duplicate keys, no recursive
    aliases, only finite floats); every problem is a [`ConfigError`][biocircuits.errors.ConfigError] naming ``file`` and
    the key path."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader rejects control characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, "", {}, set())
        data = loader.construct_document(node)
    except _Limit as err:
        where = f" at line {err.mark.line + 1}" if err.mark is not None else ""
        full = ".".join(p for p in (key, err.key) if p) or None
        raise ConfigError(
            f"{err.message}{where}",
            file=file,
            key=full,
            expected=err.expected,
            suggestion="simplify the file; input limits guard against runaway configs",
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(
            f"YAML syntax error{where}: {str(problem)[:200]}",
            file=file,
            key=key,
            suggestion="check indentation, colons and quotes",
        ) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as err:  # e.g. a timestamp like 2001-13-45
        raise ConfigError(
            f"unreadable YAML value: {type(err).__name__}: {str(err)[:200]}",
            file=file,
            key=key,
            suggestion="quote the value to keep it a string",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    try:
        _check_finite(data, key or "")
    except ConfigError as err:
        raise err.with_file(file) from None
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML file into a mapping. A missing, unreadable, binary, non-UTF-8 or oversized file, a syntax
    error, an input limit exceeded or a non-mapping is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", file=str(path), suggestion="check the path and the working directory")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(
            f"cannot read the file ({err.strerror or type(err).__name__})",
            file=str(path),
            suggestion="check its permissions",
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            "file too large",
            file=str(path),
            expected=f"at most {MAX_FILE_BYTES} bytes",
            given=f"more than {MAX_FILE_BYTES} bytes",
            suggestion="is this the right file?",
        )
    if b"\0" in raw:
        raise ConfigError(
            "a binary file, not YAML text",
            file=str(path),
            expected="UTF-8 YAML text",
            suggestion="is this the right file?",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"not UTF-8 text (byte {err.start})",
            file=str(path),
            expected="UTF-8 YAML text",
            suggestion="save the file as UTF-8",
        ) from None
    data = parse_yaml_text(text, file=str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            "the file must hold a mapping of keys", file=str(path), expected="a mapping", given=type(data).__name__
        )
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
        key = f"include[{i}]"
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
        merged = deep_merge(merged, load_with_includes(real, folder, (*_stack, path)))
    return deep_merge(merged, data)


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
