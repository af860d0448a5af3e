"""Reading YAML input within limits: [`parse_yaml_text`][biocircuits.config.yaml_input.parse_yaml_text] and
[`read_yaml`][biocircuits.config.yaml_input.read_yaml] refuse what could exhaust memory or time (oversized files,
deep nesting, many aliases, alias bombs) and what no setting means (duplicate keys, recursive aliases, ``.inf`` and
``.nan``), each as a [`ConfigError`][biocircuits.errors.ConfigError] naming the file and the key path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from biocircuits.errors import ConfigError

# Input limits, checked before pydantic sees a value (a YAML alias bomb expands to gigabytes otherwise).
MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest shipped spec is a few kB
MAX_DEPTH = 32  # nesting of mappings and lists, counted with aliases expanded
MAX_ALIASES = 100  # ``*name`` references
MAX_NODES = 100_000  # values, counted with aliases expanded
MAX_KEYS = 10_000  # mapping keys, counted with aliases expanded


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that stops at [`MAX_DEPTH`][biocircuits.config.yaml_input.MAX_DEPTH] nesting and
    [`MAX_ALIASES`][biocircuits.config.yaml_input.MAX_ALIASES] aliases while it composes the node graph (before any
    Python object is built)."""

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
    linear in its text; raises [`_Limit`][biocircuits.config.yaml_input._Limit] on a duplicate key or a recursive
    alias."""
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
