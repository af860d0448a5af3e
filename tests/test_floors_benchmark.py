"""benchmarks/floors.py runs against the current interfaces (smoke size; the figures come from the commands in
docs/benchmarks.md), and the bootstrap CI that it and feedback_step.py print."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import floor_pieces  # noqa: E402
import floors  # noqa: E402
from common import bootstrap_ratio_ci  # noqa: E402

SMOKE = ["--model", "convnet", "--size", "16", "--batch", "2", "--reps", "2", "--warmup", "0", "--threads", "1"]


def test_floors_times_every_piece_and_variant(capsys):
    result = floors.main(SMOKE)
    assert set(result["variants"]) == set(floors.VARIANTS) - {"plain autograd"}
    for row in result["variants"].values():
        assert (row["floor_ratio"] > 1.0) == bool(row["pieces"]) and row["measured_ratio"] > 0
        assert set(row["pieces"]) <= set(result["pieces"])
    pieces = result["pieces"]
    # the draws cover every layer's error, once: as many values as the layers' outputs hold
    assert pieces["normal draws"]["values"] == pieces["uniform draws"]["values"] > 0
    assert "| variant | vs | floor pieces | floor ratio |" in capsys.readouterr().out


def test_error_shapes_are_the_outputs_of_every_weight_layer():
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 7))
    assert floor_pieces.error_shapes(model, torch.zeros(2, 3, 5, 5)) == [(2, 4, 5, 5), (2, 7)]


def test_bootstrap_ci_of_the_ratio_of_medians():
    # every round at ratio 2: the CI is the point
    assert bootstrap_ratio_ci([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == (2.0, 2.0)
    # two rounds, num 1 and 3 over den 1: a resample's median is 1 (both round 0), 2 (one of each) or 3 (both
    # round 1), each end with probability 1/4, so 2000 resamples reach both ends
    assert bootstrap_ratio_ci([1.0, 3.0], [1.0, 1.0]) == (1.0, 3.0)
