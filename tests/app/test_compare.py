"""``biocircuits compare --rules`` varies the default rule and keeps the per-layer overrides."""

import pytest

import biocircuits.config.experiment as ex
from biocircuits.app.compare import variants


def test_rule_variants_keep_overrides_and_reset_options():
    base = ex.Experiment.from_dict(
        {
            "name": "c",
            "constraints": {
                "feedback": {
                    "rule": "sign_symmetry",
                    "options": {"magnitude": "unit"},
                    "overrides": {"2": "bp"},
                    "seed": 4,
                }
            },
        }
    )
    runs = variants(base, ["fa", "dfa"], None)
    for rule, exp in runs.items():
        feedback = exp.resolved_constraints().feedback
        assert (feedback.rule, feedback.options, feedback.overrides, feedback.seed) == (rule, {}, {"2": "bp"}, 4)


def test_the_specs_own_rule_keeps_its_options():
    base = ex.Experiment.from_dict(
        {"name": "c", "constraints": {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "unit"}}}}
    )
    runs = variants(base, ["sign_symmetry", "fa"], None)
    assert runs["sign_symmetry"].resolved_constraints().feedback.options == {"magnitude": "unit"}
    assert runs["fa"].resolved_constraints().feedback.options == {}


def test_compare_json_records_seed_options_phases_and_plasticity_and_report_reads_it(tmp_path):
    import json

    from biocircuits.app.cli import main
    from biocircuits.app.compare import compare

    (tmp_path / "exp.yaml").write_text(
        "name: c\nconstraints: {feedback: {rule: sign_symmetry, options: {magnitude: unit}},"
        " phases: {error_noise: 0.1}}\ndata: {name: digits}\nmodel: {name: mlp, kwargs: {hidden: [8]}}\n"
        "train: {steps: 2, batch_size: 32, seed: 3, probe_every: null, plots: false, progress: false}\n"
    )
    compare(tmp_path / "exp.yaml", rules=["sign_symmetry", "fa"], output=tmp_path / "cmp")
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert table["sign_symmetry"]["feedback"]["options"] == {"magnitude": "unit"}
    assert table["fa"]["feedback"]["options"] == {}
    for label in ("sign_symmetry", "fa"):
        row = table[label]
        assert row["seed"] == 3 and row["feedback"]["seed"] == 3 and row["phases"]["error_noise"] == 0.1
        assert "plasticity" in row
    assert main(["report", str(tmp_path / "cmp")]) == 0
    rows = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert [(r["variant"], r["seed"], r["status"], r["steps"]) for r in rows] == [
        ("sign_symmetry", 3, "finished", 2),
        ("fa", 3, "finished", 2),
    ]


def test_compare_over_seeds_is_a_small_sweep_its_table_shows_what_each_run_ran_with(tmp_path):
    import json

    from biocircuits.app.cli import main

    (tmp_path / "exp.yaml").write_text(
        "name: c\nconstraints: {feedback: {rule: sign_symmetry, options: {magnitude: unit}},"
        " phases: {error_noise: 0.1}}\ndata: {name: digits}\nmodel: {name: mlp, kwargs: {hidden: [8]}}\n"
        "train: {steps: 2, batch_size: 32, seed: 3, probe_every: null, plots: false, progress: false}\n"
    )
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                str(tmp_path / "exp.yaml"),
                "--rules",
                "sign_symmetry,fa",
                "--seeds",
                "5,6",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    runs = json.loads((out / "compare.json").read_text())
    assert list(runs) == ["sign_symmetry-s5", "sign_symmetry-s6", "fa-s5", "fa-s6"]
    assert [(r["variant"], r["seed"], r["feedback"]["seed"]) for r in runs.values()] == [
        ("sign_symmetry", 5, 5),
        ("sign_symmetry", 6, 6),
        ("fa", 5, 5),
        ("fa", 6, 6),
    ]
    md = (out / "compare.md").read_text()
    assert '| sign_symmetry-s5 | sign_symmetry | no | 5 | {"magnitude":"unit"} | {"error_noise":0.1} | - |' in md
    assert '| fa-s6 | fa | no | 6 | - | {"error_noise":0.1} | - |' in md
    summary = json.loads((out / "summary.json").read_text())  # the sweep's statistics, over the seeds, by hand
    for label in ("sign_symmetry", "fa"):
        accs = [runs[f"{label}-s{s}"]["val_acc1"] for s in (5, 6)]
        assert summary["variants"][label]["n"] == 2
        assert summary["variants"][label]["mean"] == pytest.approx(sum(accs) / 2)
        assert summary["variants"][label]["sd"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
    diffs = [runs[f"fa-s{s}"]["val_acc1"] - runs[f"sign_symmetry-s{s}"]["val_acc1"] for s in (5, 6)]
    assert summary["variants"]["fa"]["vs_baseline"]["mean"] == pytest.approx(sum(diffs) / 2)
    assert (out / "table.md").is_file() and (out / "results.csv").is_file()


@pytest.mark.parametrize("text", ["1,1", "-1", "a", ""])
def test_bad_compare_seeds_are_refused(text):
    import argparse

    from biocircuits.app.cli import seed_list

    with pytest.raises(argparse.ArgumentTypeError, match="distinct non-negative integers"):
        seed_list(text)
