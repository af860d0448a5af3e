"""``biocircuits check-pathway`` on a trained run: held patterns, waveforms, the gated chain, the calibrated spec,
and bad input (exit 2, naming the option)."""

import json
import math

import pytest

pytest.importorskip("brian2")

from biocircuits.app.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from biocircuits.config.experiment import Experiment
    from biocircuits.train.trainer import run_experiment

    path = tmp_path_factory.mktemp("cp") / "run"
    exp = Experiment.from_dict(
        {
            "name": "cp",
            "constraints": "sign_symmetry.yaml",
            "data": {"name": "digits"},
            "model": {"name": "mlp", "kwargs": {"hidden": [24, 12]}},
            "train": {"steps": 5, "batch_size": 16},
        }
    )
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
    assert (
        main(["check-pathway", str(run), "--layer", "5", "--mode", "rate", "--waveform", "sine", "--frequency", "20"])
        == 0
    )
    out = capsys.readouterr().out
    assert "20.00 Hz: gain 0.6227" in out and "(analytic 0.6227)" in out  # 1 / sqrt(1 + (2 pi 20 Hz 10 ms)^2)
    assert (run / "pathway_5_rate_sine.png").stat().st_size > 10_000
    assert (
        main(
            [
                "check-pathway",
                str(run),
                "--layer",
                "5",
                "--mode",
                "rate",
                "--waveform",
                "ou",
                "--duration",
                "0.1",
                "--tau-corr",
                "0.02",
            ]
        )
        == 0
    )
    assert "ou stream" in capsys.readouterr().out
    assert json.loads((run / "pathway_5_rate_ou.json").read_text())["tracking"]["bin_s"] == pytest.approx(0.01)


def test_chain_and_calibration(run, tmp_path, capsys):
    assert (
        main(
            [
                "check-pathway",
                str(run),
                "--layer",
                "5",
                "--chain",
                "3",
                "--mode",
                "rate",
                "--patterns",
                "2",
                "--duration",
                "0.2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2-layer gated pathway (10 -> 12 -> 24)" in out and out.count("cos 1.0000") == 2
    spec = tmp_path / "spiking.yaml"
    assert (
        main(
            [
                "check-pathway",
                str(run),
                "--layer",
                "5",
                "--calibrate",
                str(spec),
                "--rate",
                "100",
                "--window",
                "0.03",
                "--patterns",
                "2",
            ]
        )
        == 0
    )
    from biocircuits.config.constraints import Constraints

    loaded = Constraints.from_yaml(spec)
    assert loaded.phases.transforms()["error_noise"]["sigma"] > 0 and loaded.feedback.rule == "sign_symmetry"
    assert "r0 100 Hz, window 30 ms" in spec.read_text()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--waveform", "sawtooth"], "--waveform"),
        (["--frequency", "-3"], "--frequency"),
        (["--chain", "1"], "--chain"),
        # every option acts or is refused: these combinations used to be ignored silently
        (["--waveform", "recorded", "--duration", "0.1"], "--duration"),
        (["--waveform", "sine", "--patterns", "3"], "--patterns"),
        (["--waveform", "step", "--patterns", "3"], "--patterns"),
        (["--waveform", "ou", "--hold", "0.01"], "--hold"),
        (["--frequency", "10"], "--frequency"),
        (["--tau-corr", "0.01"], "--tau-corr"),
        (["--chain", "3", "--dale"], "--dale"),
        (["--chain", "3", "--waveform", "sine"], "--waveform"),
        (["--rate", "100"], "--rate"),
        (["--window", "0.02"], "--window"),
        (["--calibrate", "x.yaml", "--duration", "0.1"], "--duration"),
        (["--waveform", "recorded", "--patterns", "2"], "--patterns"),  # 40 ms: no tracking bin after the settle
    ],
)
def test_bad_input_exits_2_naming_the_option(run, capsys, argv, needle):
    mode = [] if "--calibrate" in argv else ["--mode", "rate"]
    try:
        code = main(["check-pathway", str(run), "--layer", "5", *mode, *argv])
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
    assert (
        main(
            [
                "check-pathway",
                str(run),
                "--layer",
                "5",
                "--calibrate",
                str(spec),
                "--rate",
                "100",
                "--window",
                "0.03",
                "--patterns",
                "4",
            ]
        )
        == 0
    )
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


def test_calibration_refuses_rate_mode(run, tmp_path, capsys):
    assert (
        main(["check-pathway", str(run), "--layer", "5", "--calibrate", str(tmp_path / "s.yaml"), "--mode", "rate"])
        == 2
    )
    assert "--mode" in capsys.readouterr().err and not (tmp_path / "s.yaml").exists()


def test_recorded_defaults_cover_many_bins(run, capsys):
    """32 validation errors x 20 ms = 640 ms; after the 5 tau = 50 ms settle (rate), (6400 - 500) // 200 = 29 bins
    of one error each (the old defaults, 4 x 20 ms, left one)."""
    assert main(["check-pathway", str(run), "--layer", "5", "--mode", "rate", "--waveform", "recorded"]) == 0
    data = json.loads((run / "pathway_5_rate_recorded.json").read_text())
    assert len(data["tracking"]["cosine"]) == (6400 - 500) // 200 and data["check"] == "recorded"


def test_sine_duration_sets_the_fitted_time(run, capsys):
    """--duration is the fitted time of each frequency: the spike noise's standard error of the gain scales as
    sqrt(f(T) / T), f(T) = 1 - (tau_s / T)(1 - exp(-T / tau_s)) the synaptic filter's finite-window factor."""
    se = {}
    for fit in (0.3, 1.2):  # at least 4 cycles of 20 Hz (0.2 s) and whole cycles, so exactly these
        assert (
            main(
                [
                    "check-pathway",
                    str(run),
                    "--layer",
                    "5",
                    "--waveform",
                    "sine",
                    "--frequency",
                    "20",
                    "--duration",
                    str(fit),
                ]
            )
            == 0
        )
        se[fit] = json.loads((run / "pathway_5_spiking_sine.json").read_text())["points"][0]["gain_se"]
    f = {T: 1 - 5e-3 / T * (1 - math.exp(-T / 5e-3)) for T in (0.3, 1.2)}
    assert se[0.3] / se[1.2] == pytest.approx(math.sqrt(f[0.3] / 0.3 / (f[1.2] / 1.2)), rel=1e-6)


def test_saturated_errors_are_said_to_be_at_rounding_level(run, tmp_path, capsys):
    """A net whose softmax is saturated (last layer x 1e4) has validation errors p - y of ~1e-16 or exactly 0:
    the report says so instead of printing meaningless cosines as if they were the pathway's."""
    import shutil

    import torch

    from biocircuits.train.checkpoint import load_checkpoint, save_checkpoint

    saturated = tmp_path / "saturated"
    shutil.copytree(run, saturated)
    ckpt = load_checkpoint(saturated / "checkpoint.pt")
    ckpt.pop("format", None)
    ckpt["model"]["5.weight"] = ckpt["model"]["5.weight"] * 1e4
    save_checkpoint(saturated / "checkpoint.pt", ckpt)
    assert main(["check-pathway", str(saturated), "--layer", "5", "--mode", "rate", "--patterns", "8"]) == 0
    out = capsys.readouterr().out
    data = json.loads((saturated / "pathway_5_rate.json").read_text())
    from biocircuits.app.check_pathway import layer_errors
    from biocircuits.train.restore import load_run

    _, model, val = load_run(saturated)
    x = torch.stack([val.val[i][0] for i in range(8)])
    y = torch.tensor([val.val[i][1] for i in range(8)])
    low = [i for i, e in enumerate(layer_errors(model, model[5], x, y)) if e.abs().max() < 16 * 2.0**-23]
    assert low and "rounding level" in out and str(low) in data["notes"][0]


def test_readme_check_pathway_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """Every ``biocircuits check-pathway`` line of the README, on the run its compare command writes (cut to two
    training steps)."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [line.split("  #")[0] for line in readme.splitlines() if line.startswith("biocircuits check-pathway")]
    assert lines
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "compare",
                "experiments/quickstart.yaml",
                "--rules",
                "fa",
                "--set",
                "train.steps=2",
                "--set",
                "train.plots=false",
            ]
        )
        == 0
    )
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "biocircuits" and main(argv[1:]) == 0, (line, capsys.readouterr().err)
        assert "pathway" in capsys.readouterr().out
