"""The reproduction table's script, at a smoke size: every rule variant builds and trains on the recipe."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import paper_table  # noqa: E402


def test_every_variant_runs_one_step(tmp_path):
    results = paper_table.main(["--seeds", "1", "--out", str(tmp_path), "--set", "train.steps=1",
                                "--set", "data.name=digits", "--set", "data.resize=16",
                                "--set", "data.val_fraction=0.02", "--set", "train.batch_size=8"])
    assert set(results) == set(paper_table.VARIANTS)
    assert all(len(v) == 1 and 0.0 <= v[0] <= 100.0 for v in results.values())
