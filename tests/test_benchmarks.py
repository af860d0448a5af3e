"""The benchmark scripts still run against the current interfaces (at a smoke size; the figures come from the
documented commands in docs/benchmarks.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import feedback_step  # noqa: E402


def test_feedback_step_benchmark_runs_every_variant():
    result = feedback_step.main(["--size", "16", "--batch", "2", "--reps", "1", "--warmup", "0", "--dale", "--learned"])
    rows = result["rows"]
    assert {
        "bp",
        "fa",
        "sign_symmetry",
        "dale_project+sign_symmetry",
        "dale_exp_gradient+sign_symmetry",
        "dale_abs+sign_symmetry",
        "kolen_pollack",
        "dfa",
        "weight_mirror (32 draws every step)",
        "dale_dann+sign_symmetry",
        "dale_dann_divisive+sign_symmetry",
        "dale_dann+bp",
        "dale_dann+sign_symmetry_centred",
        "dale_project+synapse_plasticity+sign_symmetry",
    } <= set(rows)
    assert all(r["ratio"] > 0 for r in rows.values())
    # each ratio with its bootstrap CI (one step per variant: the CI is the point itself)
    assert all(r["ci95"][0] <= r["ratio"] <= r["ci95"][1] for r in rows.values())


def test_phases_benchmark_runs_every_setting():
    import phases_overhead

    result = phases_overhead.main(["--model", "convnet", "--size", "16", "--batch", "2", "--reps", "1"])
    assert set(phases_overhead.PHASES) == set(result["rows"])
    assert set(phases_overhead.TARGETS) <= set(result["rows"])
    assert result["probe_cost_steps"] > 0
