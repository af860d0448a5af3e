"""``ruff check`` and ``ruff format --check`` pass (the checks of the pre-commit hooks, .pre-commit-config.yaml)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    ruff = Path(sys.executable).with_name("ruff")
    ruff = str(ruff) if ruff.exists() else shutil.which("ruff")
    assert ruff, "ruff is in the test extra: pip install -e '.[test]'"
    done = subprocess.run(
        [ruff, "check", "biocircuits", "tests", "benchmarks", "docs", "setup.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_applied():
    """One format for the code: ``ruff format --check`` (settings in pyproject.toml) passes, as the pre-commit hook
    checks; run ``ruff format`` to fix."""
    ruff = Path(sys.executable).with_name("ruff")
    ruff = str(ruff) if ruff.exists() else shutil.which("ruff")
    assert ruff, "ruff is in the test extra: pip install -e '.[test]'"
    done = subprocess.run(
        [ruff, "format", "--check", "biocircuits", "tests", "benchmarks", "docs", "tools", "setup.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
