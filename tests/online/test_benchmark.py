"""benchmarks/recurrent_memory.py still runs against the current interfaces (smoke size; the figures come from the
documented command in docs/benchmarks.md), and at that size the online rules' peak memory is flat in T."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import recurrent_memory  # noqa: E402


def test_recurrent_memory_benchmark_runs_every_method():
    result = recurrent_memory.main(["--hidden", "24", "--batch", "2", "--lengths", "10", "40", "--reps", "1"])
    rows = result["rows"]
    assert set(rows) == set(recurrent_memory.METHODS)
    assert rows["bptt (bp)"]["flat"] > 2.0
    assert rows["rflo"]["flat"] < 1.2
