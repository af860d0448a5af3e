"""benchmarks/dann_step.py and weight_mirror_step.py still run against the current interfaces (smoke size; the
figures come from the commands in docs/benchmarks.md)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


SMOKE = ["--model", "convnet", "--size", "16", "--batch", "2", "--reps", "1", "--warmup", "0", "--threads", "1"]


@pytest.mark.parametrize(
    ("script", "only", "want"),
    [
        ("dann_step", ["divisive"], {"dann divisive + sign_symmetry", "sign_symmetry", "plain autograd"}),
        ("weight_mirror_step", [], None),
    ],
)
def test_the_benchmark_times_its_variants_against_their_references(script, only, want, capsys):
    module = __import__(script)
    rows = module.main(SMOKE + (["--only", *only] if only else []))["rows"]
    assert set(rows) == (want or set(module.VARIANTS)) and all(r["ratio"] > 0 for r in rows.values())
    assert "| variant | step ms | vs | ratio |" in capsys.readouterr().out


def test_the_profile_lists_the_fused_product_of_dann(capsys):
    import dann_mirror_profile

    argv = ["--model", "convnet", "--size", "16", "--batch", "2", "--quick", "--only", "plain", "dann+bp"]
    tables = dann_mirror_profile.main(argv)
    assert set(tables) == {"plain", "dann+bp"} and "InhibitedWeight" in tables["dann+bp"]
    assert "| total self ms |" in capsys.readouterr().out
