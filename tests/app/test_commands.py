"""The commands layer: ``biocircuits run`` plots when ``train.plots`` is on (the trainer itself never plots), and
the rank that commands read comes from ``distributed.current()``."""

import pytest

from biocircuits.app.cli import main
from biocircuits.train import distributed
from biocircuits.train.run_folder import RunFolder

EXPERIMENT = (
    "name: tiny\nconstraints: sign_symmetry.yaml\ndata: {name: digits}\n"
    "model: {name: mlp, kwargs: {hidden: [16]}}\n"
    "train: {steps: 4, batch_size: 32, log_every: 2, probe_every: 2, plots: %s}\n"
)


@pytest.mark.parametrize("plots", [True, False])
def test_run_command_plots_only_when_asked(tmp_path, capsys, plots):
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT % str(plots).lower())
    assert main(["run", str(exp), "--output", str(tmp_path / "run")]) == 0
    assert "val_acc1" in capsys.readouterr().out
    folder = RunFolder(tmp_path / "run")
    assert (folder.plots / "curves.png").is_file() == plots
    assert (folder.plots / "angles_run.png").is_file() == plots


def test_current_reads_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    info = distributed.current()
    assert (info.rank, info.world, info.local_rank, info.is_main, info.enabled) == (3, 4, 1, False, True)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name)
    assert distributed.current() == distributed.DistInfo()
