"""``search: {algorithm: optuna}``: validated before anything runs (every bound of the space, one seed, no grid),
Optuna's distributions match the space, and a real two-sample search on a local Ray (tiny trials) records each
sample as an ordinary trial whose run used the values Optuna chose; a rerun draws nothing more."""

from __future__ import annotations

import json
import math
import os

import pytest
import yaml

from biocircuits.app.cli import main
from biocircuits.app.sweep import plan
from biocircuits.app.sweep.adaptive import search_plan
from biocircuits.app.sweep.spec import load_sweep
from biocircuits.errors import ConfigError

SPACE = (
    "search:\n  algorithm: optuna\n  num_samples: 2\n  seed: 3\n  space:\n"
    "    optim.lr: {loguniform: [0.01, 0.2]}\n    optim.momentum: {uniform: [0.0, 0.9]}\n"
    "    model.kwargs.hidden: {choice: [[4], [8]]}\n    train.batch_size: {randint: [16, 33]}\n"
)
OPT = "experiment: exp.yaml\nsearch: {algorithm: optuna, num_samples: 2, space: "


def write(sweep_dir, text: str):
    path = sweep_dir / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("experiment: exp.yaml\nseeds: [0, 1]\n" + SPACE, "search.algorithm", "2 seeds"),
        ("experiment: exp.yaml\naxes: {optim.lr: [0.1]}\n" + SPACE, "search.algorithm", "axes"),
        (
            OPT + "{optim.momentum: {uniform: [0.5, 1.5]}}}\n",
            "search.space.optim.momentum (experiment key optim.momentum)",
            "less than",
        ),
        (OPT + "{optim.name: {choice: [sgd, sgx]}}}\n", "search.space.optim.name (experiment key optim.name)", "sgx"),
        (OPT + "{optim.lrr: {uniform: [0.1, 0.2]}}}\n", "search.space.optim.lrr", "did you mean 'lr'"),
        (OPT.replace("optuna", "tpe") + "{optim.lr: {uniform: [0.1, 0.2]}}}\n", "search.algorithm", "optuna"),
    ],
)
def test_a_bad_optuna_search_exits_2_naming_the_key(sweep_dir, capsys, text, key, words):
    path = write(sweep_dir, text)
    with pytest.raises(ConfigError):
        plan(path)
    assert main(["sweep", str(path), "--output", str(sweep_dir / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {key}") and words in err, err
    assert not (sweep_dir / "out").exists()


def test_the_space_maps_onto_optunas_distributions_and_back(sweep_dir):
    from optuna import distributions as od

    path = write(sweep_dir, "experiment: exp.yaml\n" + SPACE)
    spec, _ = load_sweep(path)
    search = search_plan(spec, path)
    assert search.distributions() == {
        "p0": od.FloatDistribution(0.01, 0.2, log=True),
        "p1": od.FloatDistribution(0.0, 0.9),
        "p2": od.CategoricalDistribution([0, 1]),
        "p3": od.IntDistribution(16, 32),
    }
    values = {"optim.lr": 0.05, "optim.momentum": 0.5, "model.kwargs.hidden": [8], "train.batch_size": 20}
    assert search.config(values) == {"p0": 0.05, "p1": 0.5, "p2": 1, "p3": 20}
    assert search.values(search.config(values)) == values
    trial = search.trial(7, values)
    assert trial.id == "007_sample007_s0" and trial.variant == "sample007"
    e = trial.experiment
    assert (e.optim.lr, e.optim.momentum, e.model.kwargs["hidden"], e.train.batch_size) == (0.05, 0.5, [8], 20)
    assert len(search.bounds()) == 2 + 2 + 2 + 2  # both ends of each range, every choice


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for this module's sweeps (a sweep uses the Ray it finds initialised)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("optuna")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_a_two_sample_optuna_search_on_a_local_ray(sweep_dir, capsys, local_ray):
    path = write(sweep_dir, "experiment: exp.yaml\nseeds: [4]\nresources: {cpu: 1}\n" + SPACE)
    out = sweep_dir / "out"
    assert main(["sweep", str(path), "--output", str(out), "--max-concurrent", "2"]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["trial"], r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("000_sample000_s4", "sample000", 4, "finished"),
        ("001_sample001_s4", "sample001", 4, "finished"),
    ]
    for row in rows:  # the run used the values Optuna chose, recorded in the row
        config = yaml.safe_load((out / "trials" / row["trial"] / "config.yaml").read_text())
        assert math.isclose(config["optim"]["lr"], row["optim.lr"]) and 0.01 <= row["optim.lr"] <= 0.2
        assert math.isclose(config["optim"]["momentum"], row["optim.momentum"])
        assert config["model"]["kwargs"]["hidden"] == row["model.kwargs.hidden"] in ([4], [8])
        assert config["train"]["batch_size"] == row["train.batch_size"] and 16 <= row["train.batch_size"] <= 32
        assert config["train"]["seed"] == 4 and row["steps"] == 6
    assert rows[0]["optim.lr"] != rows[1]["optim.lr"]
    record = json.loads((out / "sweep.json").read_text())
    assert record["engine"] == "ray" and record["sweep"]["search"]["algorithm"] == "optuna"
    capsys.readouterr()
    assert main(["sweep", str(path), "--output", str(out)]) == 0  # a rerun: every sample done, none drawn
    assert "2 started" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text()) == rows


def test_samples_take_distinct_indices_and_are_read_back_by_name(tmp_path):
    from biocircuits.app.sweep.adaptive import claim_index
    from biocircuits.app.sweep.folder import SweepFolder
    from biocircuits.app.sweep.results import sweep_rows

    trials = tmp_path / "trials"
    assert [claim_index(trials) for _ in range(3)] == [0, 1, 2]
    (trials / ".claims" / "001").rmdir()  # a gap is taken again, the others are not
    assert claim_index(trials) == 1 and claim_index(trials) == 3
    for tid in ("001_sample001_s0", "000_sample000_s0", "000_sample000_s0.old-1"):
        (trials / tid).mkdir()
        (trials / tid / "trial.json").write_text(
            json.dumps(
                {"trial": tid, "variant": tid[4:13], "seed": 0, "values": {"optim.lr": 0.1}, "status": "finished"}
            )
        )
    (tmp_path / "sweep.json").write_text(
        json.dumps(
            {"trials": [], "sweep": {"search": {"algorithm": "optuna", "space": {"optim.lr": {"uniform": [0.0, 1.0]}}}}}
        )
    )
    rows, _ = sweep_rows(SweepFolder(tmp_path))
    assert [(r["trial"], r["optim.lr"]) for r in rows] == [("000_sample000_s0", 0.1), ("001_sample001_s0", 0.1)]


def test_a_continued_search_seeds_its_sampler_afresh():
    """A rerun that finds samples taken must not replay the first run's random draws (TPE starts at random)."""
    from biocircuits.app.sweep.adaptive import sampler_seed

    assert sampler_seed(3, 0) == sampler_seed(3, 0)  # a fresh search is reproducible from its seed
    assert len({sampler_seed(3, 0), sampler_seed(3, 1), sampler_seed(3, 2), sampler_seed(4, 0)}) == 4
