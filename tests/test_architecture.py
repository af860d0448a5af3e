"""The allowed import directions of the package (the contracts in pyproject.toml), checked by import-linter."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken" in done.stdout, done.stdout


def _package_files() -> list[Path]:
    return sorted((ROOT / "biocircuits").rglob("*.py"))


def test_modules_and_functions_stay_small():
    """Files under 350 lines, functions under 60 (docstrings included), the training loop under 200 lines."""
    import ast

    long_files = [
        f"{p.relative_to(ROOT)}: {n}" for p in _package_files() if (n := len(p.read_text().splitlines())) > 350
    ]
    long_functions = []
    for path in _package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long_files, long_files
    assert not long_functions, long_functions
    assert len((ROOT / "biocircuits" / "train" / "trainer.py").read_text().splitlines()) <= 200
