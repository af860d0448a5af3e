"""Writes the docs notebooks from their cell sources and executes them, so that they are committed with their
outputs and figures (run: ``python docs/notebooks/make_notebooks.py [NAME ...] [--no-execute]``).

Each notebook's cells live in ``sources/<name>.py`` (``CELLS``; a new file there is a new notebook). Each has
one ``parameters`` cell (its size: steps, simulated time); the tests swap it for the small settings in the
module's ``FAST`` and execute the notebook, and check that the committed notebooks are what this file writes.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import nbformat as nbf
from nbclient import NotebookClient

HERE = Path(__file__).parent


def notebook(cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    """A v4 notebook from ``(kind, source)`` pairs: ``md``, ``code``, or ``parameters`` (a code cell tagged
    ``parameters``, the one the tests replace with fast settings)."""
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src in cells:
        if kind == "md":
            nb.cells.append(nbf.v4.new_markdown_cell(src))
        else:
            cell = nbf.v4.new_code_cell(src)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):  # stable ids, so regenerating an unchanged notebook changes nothing
        cell.id = f"cell-{i}"
    return nb


def _load_sources() -> dict[str, object]:
    """Every ``sources/<name>.py`` module (its ``CELLS`` and its fast ``FAST`` parameters cell), by name."""
    found = {}
    for path in sorted((HERE / "sources").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"notebook_sources_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found[path.stem] = module
    return found


_SOURCES = _load_sources()
NOTEBOOKS = {name: module.CELLS for name, module in _SOURCES.items()}
# the parameters cells the tests execute (a few seconds each, the same code path)
FAST = {name: module.FAST for name, module in _SOURCES.items()}


def build(name: str, fast: bool = False) -> nbf.NotebookNode:
    """The notebook ``name`` as this file writes it (unexecuted); ``fast`` swaps in the ``FAST`` parameters."""
    nb = notebook(NOTEBOOKS[name])
    if fast:
        (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        cell.source = FAST[name]
    return nb


def execute(nb: nbf.NotebookNode, cwd: Path | None = None, timeout: int = 900) -> nbf.NotebookNode:
    """Run every cell in a fresh ``python3`` kernel (working directory ``cwd``, default a temporary folder);
    the outputs and figures are stored in ``nb``. A failing cell raises ``nbclient``'s CellExecutionError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(cwd or tmp)
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": path}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"notebooks to write: {', '.join(NOTEBOOKS)} (default all)")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may run (default 900)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; choose from {list(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        nb = build(name)
        if not args.no_execute:
            execute(nb, timeout=args.timeout)
        nbf.write(nb, HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
