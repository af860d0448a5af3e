"""The Brian2 bridge against analytic B^T e: rate, spiking and Dale modes, shapes, and the CLI."""

import json
import sys

import numpy as np
import pytest
import torch

brian2 = pytest.importorskip("brian2")

from biocircuits.app.cli import main  # noqa: E402
from biocircuits.bridges.brian2 import check_pathway  # noqa: E402


@pytest.fixture(scope="module")
def pathway():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(10, 60, generator=gen), torch.randn(4, 10, generator=gen)


def test_rate_mode_reproduces_switching_patterns(pathway):
    B, E = pathway
    prefs_before = brian2.prefs.codegen.target
    rep = check_pathway(B, E, "rate")
    assert len(rep.patterns) == 4 and all(p.cosine > 0.999 for p in rep.patterns)
    assert all(p.rel_l2 < 0.01 for p in rep.patterns)
    assert brian2.prefs.codegen.target == prefs_before
    assert np.allclose(rep.analytic, (E.double() @ B.double()).numpy())


def test_spiking_above_poisson_bound_and_improves_with_time(pathway):
    B, E = pathway
    short = check_pathway(B, E, "spiking", duration=0.25, seed=1)
    long = check_pathway(B, E, "spiking", duration=1.0, seed=1)
    for rep in (short, long):
        for p in rep.patterns:
            assert p.cosine > p.poisson_bound, (p.cosine, p.poisson_bound)
    assert np.mean([p.cosine for p in long.patterns]) > np.mean([p.cosine for p in short.patterns])
    assert np.mean([1 - p.cosine for p in long.patterns]) < 0.6 * np.mean([1 - p.cosine for p in short.patterns])


@pytest.mark.parametrize("mode", ["rate", "spiking"])
def test_dale_mode_obeys_signs_and_still_delivers(pathway, mode):
    B, E = pathway
    rep = check_pathway(B, E, mode, dale=True, duration=0.5 if mode == "spiking" else None, seed=2)
    assert rep.sign_violations == 0 and rep.neurons["relay"] == 20
    threshold = 0.999 if mode == "rate" else 0.9
    assert all(p.cosine > threshold for p in rep.patterns)
    plain = check_pathway(B, E, mode, dale=False, duration=0.5 if mode == "spiking" else None, seed=2)
    assert plain.neurons["relay"] == 0


def test_non_square_one_hot_lands_on_the_right_neurons():
    B = torch.zeros(3, 7)
    B[1] = torch.tensor([0.0, 2.0, 0.0, -1.0, 0.0, 0.5, 0.0])
    B[0, 6] = 5.0  # must not show up for a one-hot error on unit 1
    e = torch.tensor([[0.0, 1.0, 0.0]])
    rep = check_pathway(B, e, "rate")
    assert np.allclose(rep.simulated[0], B[1].numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="3 rows"):
        check_pathway(B, torch.ones(1, 7), "rate")


def test_layer_input_and_backprop_angle():
    from biocircuits.nn import FeedbackConv2d, FeedbackLinear
    torch.manual_seed(0)
    fa = FeedbackLinear(20, 8, rule="fa")
    rep = check_pathway(fa, torch.randn(2, 8), "rate")
    assert rep.shape == (8, 20) and 45 < rep.patterns[0].backprop_angle_deg < 135
    ss = FeedbackLinear(20, 8, rule="sign_symmetry")
    assert check_pathway(ss, torch.randn(2, 8), "rate").patterns[0].backprop_angle_deg < 45
    conv = FeedbackConv2d(3, 5, 3, rule="fa")
    assert check_pathway(conv, torch.randn(1, 5), "rate").shape == (5, 27)  # patch unrolled


def test_without_brian2_one_clear_message(monkeypatch):
    import biocircuits.bridges.brian2 as bridge
    monkeypatch.setattr(bridge, "b2", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[spiking\]"'):
        bridge.check_pathway(torch.ones(2, 2), torch.ones(1, 2))


def test_check_pathway_cli(tmp_path, capsys):
    from biocircuits.config.experiment import Experiment
    from biocircuits.train.trainer import run_experiment
    exp = Experiment.from_dict({"name": "cp", "constraints": "sign_symmetry.yaml", "data": {"name": "digits"},
                                "model": {"name": "mlp", "kwargs": {"hidden": [24]}},
                                "train": {"steps": 5, "batch_size": 16}})
    run_experiment(exp, tmp_path / "run")
    code = main(["check-pathway", str(tmp_path / "run"), "--layer", "3", "--mode", "spiking", "--duration", "0.3"])
    out = capsys.readouterr().out
    assert code == 0 and "spiking pathway" in out and "pattern 3" in out
    data = json.loads((tmp_path / "run" / "pathway_3_spiking.json").read_text())
    assert len(data["patterns"]) == 4 and data["shape"] == [10, 24]
    assert (tmp_path / "run" / "pathway_3_spiking.png").stat().st_size > 10_000
    assert main(["check-pathway", str(tmp_path / "run"), "--layer", "9"]) == 2
    assert "no converted layer" in capsys.readouterr().err


def test_biocircuits_imports_without_brian2(tmp_path):
    import subprocess
    code = "import sys; sys.modules['brian2'] = None; import biocircuits, biocircuits.bridges.brian2 as b; " \
           "print(b.b2 is None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "True"
