"""The deep-Dale table's script at a smoke size: the variants build and train, the results log resumes, the report
is written; and the collapse it documents: at initialisation the old column-sign ResNet-18 carries a
one-dimensional representation, the divisive population norm restores a high-dimensional one."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import dale_deep  # noqa: E402

SMOKE = ["--set", "train.steps=1", "--set", "data.name=digits", "--set", "data.resize=16",
         "--set", "data.val_fraction=0.02", "--set", "train.batch_size=8", "--set", "train.epochs=1"]


def test_variants_run_one_step_and_the_log_resumes(tmp_path):
    variants = "Dale old bp,DANN sign_symmetry centred"
    results = dale_deep.main(["--seeds", "1", "--variants", variants, "--out", str(tmp_path), *SMOKE])
    assert list(results) == variants.split(",")
    assert all(len(v) == 1 and 0.0 <= v[0] <= 100.0 for v in results.values())
    rows = dale_deep.read_results(tmp_path / "results.jsonl")
    assert len(rows) == 2 and {r["epochs"] for r in rows} == {1}
    again = dale_deep.main(["--seeds", "1", "--variants", variants, "--out", str(tmp_path), *SMOKE])  # nothing new
    assert again == results and len(dale_deep.read_results(tmp_path / "results.jsonl")) == 2
    report = dale_deep.main(["--report", "--variants", "DANN sign_symmetry centred,Dale old bp",
                             "--out", str(tmp_path)])
    assert list(report) == ["DANN sign_symmetry centred", "Dale old bp"]
    assert list(dale_deep.main(["--report", "--out", str(tmp_path)])) == ["Dale old bp", "DANN sign_symmetry centred"]


def test_a_diverged_run_is_recorded_and_reported(tmp_path):
    results = dale_deep.main(["--seeds", "1", "--variants", "bp", "--out", str(tmp_path), *SMOKE,
                              "--set", "optim.lr=1e38"])
    assert results == {"bp": [None]}
    [row] = dale_deep.read_results(tmp_path / "results.jsonl")
    assert row["val_acc1"] is None and "non-finite" in row["diverged"]


def test_markdown_table_from_rows():
    rows = [{"label": "bp", "seed": s, "val_acc1": a, "epochs": 8, "wall_s": 60.0} for s, a in enumerate([98, 97])]
    rows += [{"label": "DANN bp", "seed": s, "val_acc1": a, "epochs": 8, "wall_s": 30.0}
             for s, a in enumerate([None, 90.0])]
    text = dale_deep.markdown(dale_deep.collect(rows), rows, "cmd")
    assert "| bp | 97.50 | 97.00-98.00 | 2 | 98.0, 97.0 |" in text and "3.0 min" in text
    assert "| DANN bp | 90.00 | 90.00-90.00 | 2 | diverged, 90.0 |" in text
    json.dumps(dale_deep.collect(rows))


def test_population_norm_undoes_the_collapse_at_init():
    old = dale_deep.participation_ratios({"dale": dale_deep.OLD_DALE}, n=128)
    new = dale_deep.participation_ratios({"dale": dale_deep.NEW_DALE}, n=128)
    assert max(old[f"layer{i}.1"] for i in (2, 3, 4)) < 3.0   # every channel carries ~ the same signal
    assert min(new[f"layer{i}.1"] for i in (2, 3, 4)) > 10.0


def test_the_dann_presets_are_the_table_settings():
    import biocircuits as bc
    for preset, label in (("dale_dann", "DANN bp"), ("dale_dann_sign_symmetry", "DANN sign_symmetry centred")):
        spec = bc.Constraints.from_yaml(dale_deep.ROOT / "constraints" / f"{preset}.yaml")
        assert spec.model_dump() == bc.Constraints.from_dict(dale_deep.VARIANTS[label]).model_dump(), preset


def test_uncentred_sign_feedback_explodes_down_a_dann_resnet_and_centring_at_w_scale_does_not():
    """The documented finding at a small batch: at init the first layer's gradient under DANN + sign symmetry is
    orders of magnitude above bp's without centring, within a small factor of it with centre + weight_rms."""
    plain = dale_deep.gradient_ratios(dale_deep.VARIANTS["DANN sign_symmetry paper"], dale_deep.VARIANTS["DANN bp"],
                                      n=32)
    fixed = dale_deep.gradient_ratios(dale_deep.VARIANTS["DANN sign_symmetry centred"], dale_deep.VARIANTS["DANN bp"],
                                      n=32)
    assert plain["conv1"] > 1e4 and plain["layer4.1.conv2"] < 10.0
    assert all(0.2 < r < 5.0 for r in fixed.values()), fixed
