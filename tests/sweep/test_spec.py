"""The sweep file: grid and variant expansion, every trial's experiment validated before anything runs, and bad
sweep files exiting 2 with the key named (no Ray needed: validation comes first)."""

from __future__ import annotations

import pytest

from biocircuits.app.cli import main
from biocircuits.app.sweep import plan
from biocircuits.errors import ConfigError


def write(sweep_dir, text: str):
    path = sweep_dir / "sweep.yaml"
    path.write_text(text)
    return path


def test_axes_times_seeds_in_file_order(sweep_dir):
    path = write(
        sweep_dir,
        "experiment: exp.yaml\nset: {optim.lr: 0.05}\naxes:\n  constraints: [bp.yaml, dale.yaml]\n"
        "  constraints.feedback.rule: [bp, fa]\nseeds: [3, 4]\n",
    )
    spec, data, trials = plan(path)
    assert data["seeds"] == [3, 4] and len(trials) == 2 * 2 * 2
    got = [(t.values["constraints"], t.values["constraints.feedback.rule"], t.seed) for t in trials]
    assert got == [(c, r, s) for c in ("bp.yaml", "dale.yaml") for r in ("bp", "fa") for s in (3, 4)]
    for t in trials:
        spec_ = t.experiment.resolved_constraints()
        assert spec_.feedback.rule == t.values["constraints.feedback.rule"]
        assert spec_.dale_on == (t.values["constraints"] == "dale.yaml")
        assert t.experiment.train.seed == t.seed and t.experiment.optim.lr == 0.05
        assert t.experiment.train.steps == 6  # the experiment's own settings stay
    assert len({t.id for t in trials}) == len(trials)
    assert trials[0].variant == "constraints=bp,rule=bp"


def test_named_variants_times_seeds(sweep_dir):
    path = write(
        sweep_dir,
        "experiment: exp.yaml\nvariants:\n  - {name: slow, set: {optim.lr: 0.01}}\n"
        "  - {name: fa, set: {constraints.feedback.rule: fa, optim.lr: 0.02}}\nseeds: [0, 1]\n"
        "baseline: slow\n",
    )
    _, _, trials = plan(path)
    assert [(t.variant, t.seed) for t in trials] == [("slow", 0), ("slow", 1), ("fa", 0), ("fa", 1)]
    assert [t.experiment.optim.lr for t in trials] == [0.01, 0.01, 0.02, 0.02]
    assert trials[2].experiment.resolved_constraints().feedback.rule == "fa"


def test_random_search_draws_from_its_seed_once_and_for_all(sweep_dir):
    text = (
        "experiment: exp.yaml\nsearch:\n  num_samples: 4\n  seed: 7\n  space:\n"
        "    optim.lr: {loguniform: [0.001, 0.1]}\n    model.kwargs.hidden: {choice: [[8], [16]]}\n"
        "    train.batch_size: {randint: [16, 33]}\nseeds: [0, 1]\n"
    )
    _, _, trials = plan(write(sweep_dir, text))
    assert len(trials) == 8 and [t.variant for t in trials[::2]] == [f"sample{i:03d}" for i in range(4)]
    for t in trials:
        e = t.experiment
        assert 0.001 <= e.optim.lr <= 0.1 and e.model.kwargs["hidden"] in ([8], [16])
        assert 16 <= e.train.batch_size <= 32
        assert t.values == {
            "optim.lr": e.optim.lr,
            "model.kwargs.hidden": e.model.kwargs["hidden"],
            "train.batch_size": e.train.batch_size,
        }
    assert trials[0].values == trials[1].values and trials[0].seed != trials[1].seed  # a sample runs every seed
    assert len({t.values["optim.lr"] for t in trials}) == 4
    _, _, again = plan(sweep_dir / "sweep.yaml")  # a rerun plans the same trials
    assert [t.values for t in again] == [t.values for t in trials]


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("experiment: exp.yaml\naxes: {train.epochz: [1, 2]}\n", "axes.train.epochz", "did you mean 'epochs'"),
        ("experiment: exp.yaml\naxes: {optim.lr: [0.1, -1]}\n", "axes.optim.lr", "greater than 0"),
        ("experiment: exp.yaml\naxes: {constraints.feedback.rule: [bp, fx]}\n", "axes.constraints.feedback.rule", "fx"),
        ("experiment: exp.yaml\naxes: {constraints: [bp.yaml, nope.yaml]}\n", "axes.constraints", "not found"),
        ("experiment: exp.yaml\nset: {train.batch_size: 0}\n", "set.train.batch_size", "greater than or equal"),
        (
            "experiment: exp.yaml\nvariants: [{name: a, set: {model.nam: mlp}}]\n",
            "variants[a].set.model.nam",
            "unknown key",
        ),
        ("experiment: exp.yaml\nseedz: [0]\n", "seedz", "did you mean 'seeds'"),
        ("experiment: exp.yaml\nseeds: [0, 0]\n", "seeds", "distinct"),
        ("experiment: exp.yaml\nscheduler: hyperband\n", "scheduler.name", "asha"),
        (
            "experiment: exp.yaml\nsearch: {num_samples: 2, space: {optim.lr: {uniform: [0.1, 0.1]}}}\n",
            "search.space.optim.lr.uniform",
            "low < high",
        ),
        (
            "experiment: exp.yaml\nsearch: {num_samples: 2, space: {optim.lr: {normal: [0, 1]}}}\n",
            "search.space.optim.lr.normal",
            "unknown key",
        ),
        (
            "experiment: exp.yaml\nsearch: {num_samples: 2, space: {optim.momentum: {uniform: [0.5, 2.0]}}}\n",
            "search.space.optim.momentum (experiment key optim.momentum)",
            "less than 1",
        ),
        ("experiment: exp.yaml\nresources: {cpu: 0}\n", "resources.cpu", "greater than 0"),
        ("experiment: nope.yaml\n", "experiment", "not found"),
        ("experiment: exp.yaml\naxes: {optim.lr: [0.1]}\nbaseline: lr=0.2\n", "baseline", "lr=0.1"),
        ("experiment: exp.yaml\naxes: {train.seed: [1]}\n", "axes", "seeds:"),
    ],
)
def test_bad_sweep_file_exits_2_naming_the_key(sweep_dir, capsys, text, key, words):
    path = write(sweep_dir, text)
    with pytest.raises(ConfigError):
        plan(path)
    assert main(["sweep", str(path), "--output", str(sweep_dir / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {key}") and words in err, err
    assert "Traceback" not in err and not (sweep_dir / "out").exists()  # nothing started


def test_ray_is_imported_only_by_a_sweep_and_its_absence_is_explained(sweep_dir, monkeypatch, capsys):
    import subprocess
    import sys

    code = "import sys, biocircuits, biocircuits.app.cli, biocircuits.app.sweep; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    path = write(sweep_dir, "experiment: exp.yaml\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["sweep", str(path), "--output", str(sweep_dir / "out")]) == 1
    assert 'pip install -e ".[sweep]"' in capsys.readouterr().err


def test_a_folder_of_another_sweep_is_refused(sweep_dir, capsys):
    pytest.importorskip("ray")
    out = sweep_dir / "out"
    out.mkdir()
    (out / "sweep.json").write_text('{"sweep": {"experiment": "other.yaml"}, "trials": ["x"], "commands": []}')
    path = write(sweep_dir, "experiment: exp.yaml\n")
    assert main(["sweep", str(path), "--output", str(out)]) == 2
    assert "holds another sweep" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".lock", "sweep.json"]  # nothing started


def test_command_line_sets_and_variants_narrow_the_sweep(sweep_dir, capsys):
    path = write(
        sweep_dir,
        "experiment: exp.yaml\nset: {optim.lr: 0.05}\nvariants:\n  - {name: a, set: {}}\n"
        "  - {name: b, set: {optim.momentum: 0.5}}\n  - {name: c, set: {}}\nbaseline: a\nseeds: [0, 1]\n",
    )
    spec, data, trials = plan(path, sets={"optim.lr": 0.01, "train.steps": 2}, only=["c", "b"])
    assert [(t.variant, t.seed) for t in trials] == [("b", 0), ("b", 1), ("c", 0), ("c", 1)]  # file order
    assert {(t.experiment.optim.lr, t.experiment.train.steps) for t in trials} == {(0.01, 2)}
    assert trials[0].experiment.optim.momentum == 0.5
    assert data["set"] == {"optim.lr": 0.01, "train.steps": 2} and "baseline" not in data  # recorded as run
    assert spec.baseline is None
    assert main(["sweep", str(path), "--variants", "a,d", "--output", str(sweep_dir / "out")]) == 2
    err = capsys.readouterr().err
    assert "--variants" in err and "'d'" in err and "one of a, b, c" in err
    assert main(["sweep", str(path), "--set", "train.epochz=1", "--output", str(sweep_dir / "out")]) == 2
    assert "set.train.epochz" in capsys.readouterr().err and not (sweep_dir / "out").exists()
