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
