"""RunFolder names a run's files and reads them; the trainer writes ``audit.json`` exactly when Dale is on."""

import json

import torch

from biocircuits.train.checkpoint import load_checkpoint
from biocircuits.train.run_folder import CompareFolder, RunFolder
from biocircuits.train.trainer import run_experiment

from .helpers import tiny_experiment


def test_paths_and_readers_of_an_empty_folder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert folder.checkpoint == tmp_path / "run" / "checkpoint.pt"
    assert folder.plots == tmp_path / "run" / "plots" and folder.tensorboard == tmp_path / "run" / "tensorboard"
    assert folder.pathway("features.0", "rate", True) == tmp_path / "run" / "pathway_features_0_rate_dale"
    assert not folder.exists() and not folder.is_run()
    assert folder.read_metrics() == [] and folder.read_config() == {} and folder.read_summary() == {}
    cmp = CompareFolder(tmp_path / "c")
    assert cmp.run("fa").metrics == tmp_path / "c" / "fa" / "metrics.jsonl"
    assert cmp.compare_md.name == "compare.md" and cmp.compare_json.name == "compare.json"


def test_a_run_without_dale_writes_no_audit(tmp_path):
    summary = run_experiment(tiny_experiment(tmp_path, steps=4, probe_every=None), tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    assert folder.is_run() and folder.read_summary()["steps"] == summary["steps"] == 4
    assert folder.read_config()["train"]["steps"] == 4
    assert [r["step"] for r in folder.read_metrics() if r["kind"] == "val"] == [4]
    assert not folder.audit.exists() and not folder.plots.exists()  # plotting is the commands' job


def test_audit_json_holds_counts_violations_and_singular_values(tmp_path):
    exp = tiny_experiment(tmp_path, steps=4, probe_every=None)
    data = exp.model_dump(mode="json")
    data["constraints"] = "dale_sign_symmetry.yaml"
    exp = type(exp).from_dict(data)
    run_experiment(exp, tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    audit = json.loads(folder.audit.read_text())
    assert audit == folder.read_audit() and audit["violations"] == 0
    model = load_checkpoint(folder.checkpoint)["model"]
    assert audit["layers"]
    for row in audit["layers"]:
        sign = model[f"{row['name']}.dale_sign"]
        assert (row["excitatory"], row["inhibitory"]) == (int((sign > 0).sum()), int((sign < 0).sum()))
        weight = model[f"{row['name']}.weight"]
        expected = torch.linalg.svdvals(weight.reshape(weight.shape[0], -1).double())
        assert torch.allclose(torch.tensor(row["singular_values"], dtype=torch.float64), expected, rtol=1e-5)
