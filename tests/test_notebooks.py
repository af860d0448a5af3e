"""The docs notebooks (docs/notebooks/make_notebooks.py): the committed ones are what the current generator
writes, executed top to bottom with their figures; and they run (at the generator's fast settings), their own
asserts checking the facts their text states."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

FOLDER = Path(__file__).resolve().parents[1] / "docs" / "notebooks"
_spec = importlib.util.spec_from_file_location("make_notebooks", FOLDER / "make_notebooks.py")
make_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_notebooks)
NAMES = list(make_notebooks.NOTEBOOKS)


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def has_figure(nb: nbformat.NotebookNode) -> bool:
    return any("image/png" in o.get("data", {}) for o in outputs(nb))


def test_every_notebook_has_a_generator():
    assert sorted(p.stem for p in FOLDER.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_current_and_executed(name):
    committed = nbformat.read(FOLDER / f"{name}.ipynb", as_version=4)
    written = make_notebooks.build(name)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in written.cells], (
        f"docs/notebooks/{name}.ipynb is stale: run python docs/notebooks/make_notebooks.py {name}"
    )
    counts = [c.execution_count for c in committed.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "not executed top to bottom in one kernel"
    assert not [o for o in outputs(committed) if o.output_type == "error"]
    assert has_figure(committed)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, tmp_path):
    if name == "spiking_feedback":
        pytest.importorskip("brian2")
    nb = make_notebooks.execute(make_notebooks.build(name, fast=True), cwd=tmp_path, timeout=600)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert has_figure(nb)


PUBLIC_MODULES = {"biocircuits", "biocircuits.nn", "biocircuits.bridges.brian2"}  # what a tutorial may import from


@pytest.mark.parametrize("name", NAMES)
def test_notebook_uses_only_public_names(name):
    """A user copying a cell depends on the public API only: imports from the public modules, and every
    ``bc.NAME`` in ``biocircuits.__all__``."""
    import ast
    import re

    import biocircuits

    code = "\n".join(src for kind, src in make_notebooks.NOTEBOOKS[name] if kind != "md")
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("biocircuits"):
            assert node.module in PUBLIC_MODULES, f"{name}: imports from {node.module}"
            public = getattr(__import__(node.module, fromlist=["__all__"]), "__all__", [])
            assert all(a.name in public for a in node.names), f"{name}: {node.module} {[a.name for a in node.names]}"
        elif isinstance(node, ast.Import):
            assert all(a.name in PUBLIC_MODULES or not a.name.startswith("biocircuits") for a in node.names)
    used = set(re.findall(r"\bbc\.(\w+)", code))
    assert used and used <= set(biocircuits.__all__), f"{name}: not public: {sorted(used - set(biocircuits.__all__))}"
