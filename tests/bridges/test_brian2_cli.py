"""``biocircuits check-pathway`` on a trained run: held patterns, waveforms, the gated chain, the calibrated spec,
and bad input (exit 2, naming the option)."""

import json

import pytest

pytest.importorskip("brian2")

from biocircuits.app.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from biocircuits.config.experiment import Experiment
    from biocircuits.train.trainer import run_experiment
    path = tmp_path_factory.mktemp("cp") / "run"
    exp = Experiment.from_dict({"name": "cp", "constraints": "sign_symmetry.yaml", "data": {"name": "digits"},
                                "model": {"name": "mlp", "kwargs": {"hidden": [24, 12]}},
                                "train": {"steps": 5, "batch_size": 16}})
    run_experiment(exp, path)
    return path


def test_patterns_report_and_bad_layer(run, capsys):
    code = main(["check-pathway", str(run), "--layer", "5", "--mode", "spiking", "--duration", "0.15"])
    out = capsys.readouterr().out
    assert code == 0 and "spiking pathway" in out and "pattern 3" in out
    data = json.loads((run / "pathway_5_spiking.json").read_text())
    assert len(data["patterns"]) == 4 and data["shape"] == [10, 12]
    assert (run / "pathway_5_spiking.png").stat().st_size > 10_000
    assert main(["check-pathway", str(run), "--layer", "9"]) == 2
    assert "no converted layer" in capsys.readouterr().err


def test_sine_and_ou_waveforms(run, capsys):
    assert main(["check-pathway", str(run), "--layer", "5", "--mode", "rate", "--waveform", "sine",
                 "--frequency", "20"]) == 0
    out = capsys.readouterr().out
    assert "20.00 Hz: gain 0.6227" in out and "(analytic 0.6227)" in out  # 1 / sqrt(1 + (2 pi 20 Hz 10 ms)^2)
    assert (run / "pathway_5_rate_sine.png").stat().st_size > 10_000
    assert main(["check-pathway", str(run), "--layer", "5", "--mode", "rate", "--waveform", "ou", "--duration",
                 "0.1", "--tau-corr", "0.02"]) == 0
    assert "ou stream" in capsys.readouterr().out
    assert json.loads((run / "pathway_5_rate_ou.json").read_text())["tracking"]["bin_s"] == pytest.approx(0.01)


def test_chain_and_calibration(run, tmp_path, capsys):
    assert main(["check-pathway", str(run), "--layer", "5", "--chain", "3", "--mode", "rate", "--patterns", "2",
                 "--duration", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "2-layer gated pathway (10 -> 12 -> 24)" in out and out.count("cos 1.0000") == 2
    spec = tmp_path / "spiking.yaml"
    assert main(["check-pathway", str(run), "--layer", "5", "--calibrate", str(spec), "--rate", "100",
                 "--window", "0.03", "--patterns", "2"]) == 0
    from biocircuits.config.constraints import Constraints
    loaded = Constraints.from_yaml(spec)
    assert loaded.phases.transforms()["error_noise"]["sigma"] > 0 and loaded.feedback.rule == "sign_symmetry"
    assert "r0 100 Hz, window 30 ms" in spec.read_text()


@pytest.mark.parametrize("argv, needle", [
    (["--waveform", "sawtooth"], "--waveform"),
    (["--frequency", "-3"], "--frequency"),
    (["--chain", "1"], "--chain"),
])
def test_bad_input_exits_2_naming_the_option(run, capsys, argv, needle):
    try:
        code = main(["check-pathway", str(run), "--layer", "5", "--mode", "rate", *argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err, err


def test_calibrated_spec_adds_the_bridges_variance_once(run, tmp_path):
    """The written spec's error noise, pushed through B in torch, has the bridge's measured readout variance
    (mean over windows of ||readout - B^T e||^2), not that variance once per written transform."""
    import numpy as np
    import torch
    import yaml
    from brian2 import Hz, second

    import biocircuits as bc
    from biocircuits.app.check_pathway import layer_errors
    from biocircuits.bridges.brian2 import calibrate_spikes
    from biocircuits.train.restore import load_run
    spec = tmp_path / "spiking.yaml"
    assert main(["check-pathway", str(run), "--layer", "5", "--calibrate", str(spec), "--rate", "100",
                 "--window", "0.03", "--patterns", "4"]) == 0
    phases = yaml.safe_load(spec.read_text())["phases"]
    assert set(phases) == {"seed", "error_noise"}
    _, model, data = load_run(run)
    layer = dict(model.named_modules())["5"]
    x, y = torch.stack([data.val[i][0] for i in range(4)]), torch.tensor([data.val[i][1] for i in range(4)])
    E = layer_errors(model, layer, x, y).double()
    B = layer.backward_weight().detach().double()
    cal = calibrate_spikes(B, E, rate=100 * Hz, window=0.03 * second)  # the command's simulation, same seed
    sim, ana = np.asarray(cal.report.simulated), np.asarray(cal.report.analytic)
    bridge = float(np.mean(np.sum((sim - ana) ** 2, axis=1)))
    lin = torch.nn.Linear(B.shape[1], B.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(B)
    bc.apply(lin, {"feedback": {"rule": "bp"}, "phases": phases})
    squared = []
    for _ in range(400):
        x0 = torch.zeros(len(E), B.shape[1], requires_grad=True)
        lin(x0).backward(E.float())
        squared += ((x0.grad.double() - E @ B) ** 2).sum(1).tolist()
    # 1600 draws of a ~10-dof chi-square: about 1% standard error
    assert np.mean(squared) == pytest.approx(bridge, rel=0.06)
