"""Rewrite Sphinx roles in the package's docstrings as mkdocstrings cross-references (idempotent).

``:func:`apply``` becomes ``[`apply`][biocircuits.apply.apply]``, which the API page renders as a link; ``~``
shows the last component only (``:class:`~.slot.DaleAttachment``` -> ``[`DaleAttachment`][biocircuits.dale.slot.
DaleAttachment]``). A target is resolved the way Python would from the module that holds it, read statically
(``ast``, nothing imported): a leading ``.`` is relative to the module's package, a bare name is one the module
defines or imports (followed through re-exports), ``Class.attr`` and a bare method name of one of the module's
classes are looked up likewise. A target that resolves outside ``biocircuits`` (or not at all) becomes plain code
(a code span) and is listed on stderr.

    python tools/docstring_roles.py            # rewrite biocircuits/ in place, print what changed
    python tools/docstring_roles.py --check    # exit 1 if any role is left (what the test suite checks)

Run it again after merging branches that add docstrings: files without roles are left untouched.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "biocircuits"
WIDTH = 120  # the project's line length (ruff)
ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|attr|data|obj|exc|const):`([^`]+)`")


def module_name(path: Path, root: Path = ROOT) -> str:
    """``biocircuits/dale/slot.py`` -> ``biocircuits.dale.slot``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(module: str, root: Path = ROOT) -> bool:
    return (root / module.replace(".", "/") / "__init__.py").is_file()


def source_of(module: str, root: Path = ROOT) -> Path | None:
    base = root / module.replace(".", "/")
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def absolute(module: str, relative: str, level: int, root: Path = ROOT) -> str:
    """The absolute module of ``from <level dots><relative> import ...`` written in ``module``."""
    package = module if is_package(module, root) else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{relative}" if relative else package


class Namespace:
    """The top-level names of a module (read statically): what it defines, what it imports from where, and the
    methods and attributes of its classes."""

    _cache: dict[tuple[str, Path], Namespace] = {}

    def __init__(self, module: str, root: Path = ROOT) -> None:
        self.module, self.defined, self.imported, self.members = module, set(), {}, {}
        path = source_of(module, root)
        tree = ast.parse(path.read_text()) if path else ast.Module(body=[], type_ignores=[])
        for node in ast.walk(tree) if path else ():
            if isinstance(node, ast.ImportFrom):
                origin = absolute(module, node.module or "", node.level, root) if node.level else node.module
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = f"{origin}.{alias.name}"
            elif isinstance(node, ast.Import):  # import a.b as c: c is a.b; import a.b: a is a
                for alias in node.names:
                    local = alias.asname or alias.name.partition(".")[0]
                    self.imported[local] = alias.name if alias.asname else local
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                self.defined.update(t.id for t in targets if isinstance(t, ast.Name))
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names = [item.name]
                    else:
                        targets = getattr(item, "targets", [getattr(item, "target", None)])
                        names = [t.id for t in targets if isinstance(t, ast.Name)]
                    for name in names:
                        self.members.setdefault(name, f"{node.name}.{name}")

    @classmethod
    def of(cls, module: str, root: Path = ROOT) -> Namespace:
        if (module, root) not in cls._cache:
            cls._cache[(module, root)] = cls(module, root)
        return cls._cache[(module, root)]


def canonical(dotted: str, root: Path = ROOT, depth: int = 0) -> str | None:
    """Where ``dotted`` is defined, following re-exports (``biocircuits.core.Registry`` ->
    ``biocircuits.core.registry.Registry``); None when it is not a name of the package's own source."""
    if depth > 10 or not dotted.startswith(PACKAGE):
        return None
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):  # the longest prefix that is a module
        module = ".".join(parts[:cut])
        if source_of(module, root) is None:
            continue
        rest = parts[cut:]
        if not rest:
            return module
        ns = Namespace.of(module, root)
        if rest[0] in ns.defined:
            return ".".join([module, *rest])
        if rest[0] in ns.imported:
            return canonical(".".join([ns.imported[rest[0]], *rest[1:]]), root, depth + 1)
        sub = f"{module}.{rest[0]}"
        return canonical(".".join([sub, *rest[1:]]), root, depth + 1) if source_of(sub, root) else None
    return None


def resolve(target: str, module: str, root: Path = ROOT) -> str | None:
    """The absolute dotted path that ``target`` (as written in ``module``'s docstrings) names, or None."""
    if target.startswith("."):
        level = len(target) - len(target.lstrip("."))
        return canonical(absolute(module, target[level:], level, root), root)
    if target.startswith(f"{PACKAGE}.") or target == PACKAGE:
        return canonical(target, root)
    head, _, rest = target.partition(".")
    ns = Namespace.of(module, root)
    if head in ns.defined:
        return canonical(f"{module}.{target}", root)
    if head in ns.imported:
        return canonical(".".join(filter(None, [ns.imported[head], rest])), root)
    if head in ns.members and not rest:
        return canonical(f"{module}.{ns.members[head]}", root)
    return None


def rewrite(text: str, module: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """``text`` with every role replaced; the targets that became plain code."""
    unresolved: list[str] = []

    def code(match: re.Match) -> str:
        written = re.sub(r"\s+", "", match.group(2)).lstrip("~")
        return f"`{written.rpartition('.')[2] if match.group(2).startswith('~') else written.lstrip('.')}`"

    def replace(match: re.Match) -> str:
        written = re.sub(r"\s+", "", match.group(2))  # a role broken over two lines of a docstring
        short = written.startswith("~")
        target = written.lstrip("~")
        shown = target.rpartition(".")[2] if short else target.lstrip(".")
        found = resolve(target, module, root)
        if found and match.group(1) != "mod" and source_of(found, root):  # :func:`biocircuits.apply`: the function
            last = found.rpartition(".")[2]
            found = f"{found}.{last}" if last in Namespace.of(found, root).defined else found
        if found is None:
            unresolved.append(target)
            return f"`{shown}`"
        return f"[`{shown}`][{found}]"

    out: list[str] = []
    carry, touched = "", False  # words pushed off a rewritten line, waiting for the next line of its paragraph
    for line in _joined(text).split("\n"):
        if carry:
            if _continues(line, carry):
                line, touched = carry + " " + line.lstrip(), True
            else:
                out.append(carry)
            carry = ""
        comment = line.lstrip().startswith("#")
        if ROLE.search(line):  # a comment is never rendered: its roles become plain code
            line, touched = ROLE.sub(code if comment else replace, line), True
        parts = wrap(line) if touched else [line]
        if len(parts) > 1 and '"""' not in parts[-1] and not comment:  # a comment's overflow stays on its own line
            carry = parts.pop()
        out += parts
        touched = False
    return "\n".join([*out, carry] if carry else out), unresolved


def _continues(line: str, carry: str) -> bool:
    """Whether ``line`` continues the paragraph that ``carry`` (an indented overflow) was cut from."""
    indent = carry[: len(carry) - len(carry.lstrip())]
    rest = line[len(indent) :]
    return (
        line.startswith(indent)
        and bool(rest.strip())
        and not rest[0].isspace()
        and not re.match(r'([-*]|\d+\.)\s|"""|```|>>>|#|[A-Z][a-z]+:$', rest)
    )


def _joined(text: str) -> str:
    """``text`` with each role that a docstring broke over two lines put back on one line."""
    return re.sub(
        r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`[^`]*`",
        lambda m: re.sub(r"\s*\n\s*", "", m.group(0)),
        text,
    )


def wrap(line: str, width: int = WIDTH) -> list[str]:
    """A docstring or comment line longer than ``width`` split at spaces outside code spans and links; the
    continuation lines keep the line's indentation (and a list item's, or a comment's ``# ``)."""
    if len(line) <= width:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    head = re.match(r'(?:[rRuU]?"""|\'\'\')?((?:[-*]|\d+\.)\s+)?', line.lstrip())
    cont = indent + ("# " if line.lstrip().startswith("#") else " " * len(head.group(1) or ""))
    words, current, depth, code = [], "", 0, False
    for char in line[len(indent) :]:
        if char == " " and depth == 0 and not code:
            words.append(current)
            current = ""
            continue
        code = not code if char == "`" else code
        depth += (char == "[") - (char == "]") if not code else 0
        current += char
    words.append(current)
    out, now = [], indent + words[0]
    for word in words[1:]:
        if len(now) + 1 + len(word) > width and now.strip():
            out.append(now)
            now = cont + word
        else:
            now += " " + word
    return [*out, now]


def code_of(text: str) -> str:
    """The module's code without its docstrings and other bare string statements (comments are not in the AST)."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [
                n
                for n in body
                if not (
                    isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                )
            ] or [ast.Pass()]
    return ast.dump(tree)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a role is left")
    parser.add_argument("paths", nargs="*", type=Path, help=f"files or folders (default {PACKAGE}/)")
    args = parser.parse_args(argv)
    files = sorted({f for p in args.paths or [ROOT / PACKAGE] for f in ([p] if p.is_file() else p.rglob("*.py"))})
    left = 0
    for path in files:
        text = path.resolve().read_text()
        count = len(ROLE.findall(text))
        if not count:
            continue
        left += count
        if args.check:
            print(f"{path}: {count} Sphinx role(s)")
            continue
        new, unresolved = rewrite(text, module_name(path.resolve()))
        if code_of(new) != code_of(text):  # only docstrings and comments may change
            print(f"{path}: the rewrite would change code: left as it was", file=sys.stderr)
            return 2
        path.write_text(new)
        print(f"{path}: {count} role(s) rewritten")
        for target in unresolved:
            print(f"{path}: {target!r} resolves to no {PACKAGE} object: written as plain code", file=sys.stderr)
    if args.check and left:
        print(f"{left} Sphinx role(s) left: run python tools/docstring_roles.py", file=sys.stderr)
    return 1 if args.check and left else 0


if __name__ == "__main__":
    sys.exit(main())
