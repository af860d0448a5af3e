"""Constraint specs: presets validate, include merges, and malformed specs give one clear error (exit 2)."""

import subprocess
import sys
from pathlib import Path

import pytest

import biocircuits as bc
from biocircuits.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "constraints").glob("*.yaml"))

MALFORMED = [  # (file text, fragments the single message must contain)
    ("feedback:\n  rule: sign_symetry\n", ["feedback.rule", "unknown feedback rule", "did you mean 'sign_symmetry'"]),
    ("feedbak:\n  rule: bp\n", ["feedbak", "unknown key", "did you mean 'feedback'"]),
    ("feedback:\n  rule: fa\n  options: {magnitude: unit}\n", ["feedback", "does not take option 'magnitude'"]),
    ("feedback:\n  rule: sign_symmetry\n  options: {magnitude: huge}\n", ["magnitude", "huge"]),
    ("dale:\n  excitatory_fraction: 1.5\n", ["dale.excitatory_fraction", "less than or equal to 1", "1.5"]),
    ("dale:\n  excitatory_fraction: lots\n", ["dale.excitatory_fraction", "'lots'"]),
    ("dale:\n  enforce: clip\n", ["dale.enforce", "'clip'", "unknown Dale enforcer", "exp_gradient, project"]),
    ("dale:\n  exitatory_fraction: 0.5\n", ["exitatory_fraction", "did you mean 'excitatory_fraction'"]),
    ("feedback:\n  exclude: ['layer[1']\n", ["feedback.exclude", "unbalanced brackets"]),
    ("feedback:\n  overrides: {'': fa}\n", ["feedback.overrides", "non-empty"]),
    ("plasticity:\n  rules:\n    - match: {population: X}\n", ["plasticity.rules[0].match.population", "'X'"]),
    ("plasticity:\n  rules:\n    - lr_scale: -1\n", ["plasticity.rules[0].lr_scale", "greater than or equal to 0"]),
    ("include: [missing_file.yaml]\n", ["include[0]", "included file not found", "missing_file.yaml"]),
    ("feedback:\n  rule: [bp\n", ["YAML syntax error", "line"]),
    ("- just\n- a list\n", ["must hold a mapping"]),
    ("phases:\n  error_filter: -1\n", ["phases.error_filter", "greater than or equal to 0"]),
    ("phases:\n  eligibility_decay: 0.9\n", ["phases.eligibility_decay", "momentum", "backward_state: trace"]),
]


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_validate_and_say_what_they_model(path):
    spec = bc.Constraints.from_yaml(path)
    assert path.read_text().startswith("#")  # a comment saying what it models and its source
    assert spec.dale_on == path.stem.startswith("dale")


def test_expected_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {
        "bp",
        "feedback_alignment",
        "sign_symmetry",
        "dale",
        "dale_sign_symmetry",
        "dale_feedback_alignment",
        "dale_random_sign_symmetry",
        "dale_dann",
        "dale_dann_sign_symmetry",
    } <= names


def test_every_preset_is_in_the_docs_table():
    table = (ROOT / "docs" / "constraints.md").read_text().split("## Shipped presets")[1].split("\n\n")[1]
    listed = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert sorted(listed) == sorted(p.stem for p in PRESETS)


def test_include_later_entries_override(tmp_path):
    (tmp_path / "a.yaml").write_text("feedback: {rule: fa, seed: 3}\ndale: {excitatory_fraction: 0.5}\n")
    (tmp_path / "b.yaml").write_text("feedback: {rule: sign_symmetry}\n")
    (tmp_path / "c.yaml").write_text("include: [a.yaml, b.yaml]\ndale: {assignment: random}\n")
    spec = bc.Constraints.from_yaml(tmp_path / "c.yaml")
    assert spec.feedback.rule == "sign_symmetry" and spec.feedback.seed == 3
    assert spec.dale.excitatory_fraction == 0.5 and spec.dale.assignment == "random"


@pytest.mark.parametrize("text,fragments", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_malformed_spec_one_clear_message(tmp_path, capsys, text, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in err


def test_validate_cli_subprocess_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dale:\n  enforce: clip\n")
    proc = subprocess.run([sys.executable, "-m", "biocircuits", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "dale.enforce" in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "biocircuits", "validate", str(ROOT / "constraints" / "dale.yaml")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "valid constraint spec" in ok.stdout
