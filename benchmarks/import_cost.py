"""Start-up cost of the command's import paths: wall seconds of a fresh ``python -c "import M"`` (median over fresh
processes, the trees and modules taking turns in a fresh random order each round) and which heavy optional libraries
each path imports. ``--before REV`` times the same paths in a copy of git revision ``REV`` (``git archive``) too.

    python benchmarks/import_cost.py --before main          # --quick: 3 processes per cell instead of 5
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("torch", "biocircuits.app.sweep.trial", "biocircuits.app.cli", "biocircuits.train.trainer")
HEAVY = ("torchvision", "torch._dynamo", "matplotlib", "PIL", "pandas", "scipy", "sklearn", "mlxtend", "brian2")
PROBE = "import sys\nimport {module}\nprint(' '.join(n for n in {heavy!r} if n in sys.modules) or '-')"


def time_import(tree: Path, module: str) -> tuple[float, str]:
    """(wall seconds of a fresh interpreter importing ``module`` from ``tree``, the heavy libraries it imported)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    code = PROBE.format(module=module, heavy=HEAVY)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tree, check=True)
    return time.perf_counter() - t0, done.stdout.strip()


def export(rev: str, into: Path) -> Path:
    """Revision ``rev`` of this repository's tree, written under ``into`` (``git archive``)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure(trees: dict[str, Path], reps: int) -> dict[tuple[str, str], tuple[float, str]]:
    """Median wall seconds and heavy imports per (tree, module), the cells timed in turn in random orders."""
    cells = [(t, m) for t in trees for m in MODULES]
    times: dict[tuple[str, str], list[float]] = {c: [] for c in cells}
    heavy: dict[tuple[str, str], str] = {}
    order = random.Random(0)
    for _ in range(reps):
        order.shuffle(cells)
        for tree, module in cells:
            seconds, heavy[tree, module] = time_import(trees[tree], module)
            times[tree, module].append(seconds)
    return {c: (statistics.median(v), heavy[c]) for c, v in times.items()}


def table(results: dict[tuple[str, str], tuple[float, str]], trees: list[str], reps: int) -> str:
    """Markdown: one row per module, per tree its median seconds and the heavy libraries it imported."""
    head = " | ".join(f"{t}: s | {t}: heavy imports" for t in trees)
    lines = [
        f"median of {reps} fresh processes; load {os.getloadavg()[0]:.1f} (1 min) at the end",
        "",
        f"| import | {head} |",
        "| --- |" + " ---: | --- |" * len(trees),
    ]
    for m in MODULES:
        cells = " | ".join(f"{results[t, m][0]:.2f} | {results[t, m][1]}" for t in trees)
        lines.append(f"| `{m}` | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="a git revision to time as well (e.g. main)")
    parser.add_argument("--reps", type=int, default=5, help="fresh processes per cell")
    parser.add_argument("--quick", action="store_true", help="3 processes per cell")
    args = parser.parse_args(argv)
    reps = 3 if args.quick else args.reps
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"before": export(args.before, Path(scratch))} if args.before else {}
        trees["now"] = ROOT
        text = table(measure(trees, reps), list(trees), reps)
    print(text)
    return text


if __name__ == "__main__":
    main()
