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


def test_the_mirror_angle_table_averages_layers_then_seeds_by_hand(tmp_path):
    """Per trial: the angle at a step is the mean over layers at the nearest logged step; per variant: mean +- sd
    (n - 1) over the seeds. fa logs no angles."""
    import json

    import weight_mirror_angles

    def trial(name, variant, acc, angles):  # angles: {step: [per layer]}
        folder = tmp_path / "trials" / name
        folder.mkdir(parents=True)
        (folder / "trial.json").write_text(json.dumps({"variant": variant}))
        (folder / "summary.json").write_text(json.dumps({"val_acc1": acc}))
        rows = [{"kind": "train", "step": 10}]
        rows += [
            {"kind": "attachment", "step": s, "layer": str(i), "weight_feedback_angle": a}
            for s, layer_angles in angles.items()
            for i, a in enumerate(layer_angles)
        ]
        (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    trial("0_wm_s0", "wm", 90.0, {10: [40.0, 60.0], 20: [10.0, 20.0]})  # @10: 50, final: 15, mean: 32.5
    trial("1_wm_s1", "wm", 94.0, {10: [30.0, 50.0], 20: [20.0, 30.0]})  # @10: 40, final: 25, mean: 32.5
    trial("2_fa_s0", "fa", 80.0, {})
    rows = weight_mirror_angles.main([str(tmp_path), "--steps", "12"]).splitlines()
    sd = lambda a, b: abs(a - b) / 2**0.5  # noqa: E731  (n - 1 = 1)
    assert (
        rows[2]
        == f"| wm | 2 | 92.0 +- {sd(90, 94):.1f} | 45.0 +- {sd(50, 40):.1f} | 20.0 +- {sd(15, 25):.1f} | 32.5 +- 0.0 |"
    )
    assert rows[3] == "| fa | 1 | 80.0 +- 0.0 | - | - | - |"
