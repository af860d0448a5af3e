"""``ruff check`` passes (the same check as the pre-commit hook in .pre-commit-config.yaml)."""

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
