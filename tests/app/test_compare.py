"""``biocircuits compare --rules`` varies the default rule and keeps the per-layer overrides."""

import biocircuits.config.experiment as ex
from biocircuits.app.compare import variants


def test_rule_variants_keep_overrides_and_reset_options():
    base = ex.Experiment.from_dict({"name": "c", "constraints": {"feedback": {
        "rule": "sign_symmetry", "options": {"magnitude": "unit"}, "overrides": {"2": "bp"}, "seed": 4}}})
    runs = variants(base, ["fa", "dfa"], None)
    for rule, exp in runs.items():
        feedback = exp.resolved_constraints().feedback
        assert (feedback.rule, feedback.options, feedback.overrides, feedback.seed) == (rule, {}, {"2": "bp"}, 4)


def test_the_specs_own_rule_keeps_its_options():
    base = ex.Experiment.from_dict({"name": "c", "constraints": {"feedback": {
        "rule": "sign_symmetry", "options": {"magnitude": "unit"}}}})
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
        "train: {steps: 2, batch_size: 32, seed: 3, probe_every: null, plots: false, progress: false}\n")
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
        ("sign_symmetry", 3, "finished", 2), ("fa", 3, "finished", 2)]
