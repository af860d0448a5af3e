"""``biocircuits plot``: the PNGs are written, have the expected size and are not blank."""

import numpy as np
import pytest
from PIL import Image

from biocircuits.app.cli import main
from biocircuits.config.experiment import Experiment
from biocircuits.train.trainer import run_experiment


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plots")
    out = []
    for rule, dale in (("sign_symmetry", {"excitatory_fraction": 0.8}), ("fa", None)):
        exp = Experiment.from_dict(
            {
                "name": rule,
                "constraints": {"feedback": {"rule": rule}, "dale": dale},
                "data": {"name": "digits"},
                "model": {"name": "mlp", "kwargs": {"hidden": [32, 16]}},
                "train": {"steps": 12, "batch_size": 32, "log_every": 2, "eval_every": 4, "probe_every": 3},
            }
        )
        run_experiment(exp, tmp / rule)
        out.append(tmp / rule)
    return out


def not_blank(path):
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    return pixels.std() > 5 and (pixels < 128).mean() > 0.005  # real ink on a light background


def test_plot_writes_every_figure(runs, tmp_path, capsys):
    assert main(["plot", str(runs[0]), str(runs[1]), "--output", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.glob("*.png")}
    assert names == {
        "curves.png",
        "angles_sign_symmetry.png",
        "angles_fa.png",
        "error_angle_heatmap_sign_symmetry.png",
        "error_angle_heatmap_fa.png",
        "dale_sign_symmetry.png",
    }
    for path in tmp_path.glob("*.png"):
        width, height = Image.open(path).size
        assert width >= 500 and height >= 300, path.name
        assert not_blank(path), path.name
    assert len(capsys.readouterr().out.strip().splitlines()) == 6


def test_plot_rejects_a_non_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
