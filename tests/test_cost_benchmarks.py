"""The cost-growth benchmarks of issue #27 still run against the current interfaces (at a smoke size; the figures come
from the documented commands in docs/benchmarks.md)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import apply_cost  # noqa: E402
import cost_scaling  # noqa: E402


def test_width_builder_scales_every_stage_and_keeps_resnet18_at_x1():
    import torchvision

    assert str(cost_scaling.resnet18_width(1.0)) == str(torchvision.models.resnet18())
    half = cost_scaling.resnet18_width(0.5, num_classes=10)
    assert [half.layer1[0].conv1.out_channels, half.layer4[1].conv2.out_channels, half.fc.in_features] == [32, 256, 256]


def test_grid_moves_one_axis_at_a_time_cheapest_first():
    points = cost_scaling.grid({"batch": (8, 32), "size": (32, 64, 128)})
    assert points[-1] == {"batch": 32, "width": 1.0, "size": 128}
    assert len(points) == 4 and cost_scaling.BASE in points
    assert all(sum(p[k] != cost_scaling.BASE[k] for k in p) <= 1 for p in points)


def test_cost_scaling_runs_and_writes_its_table(tmp_path, monkeypatch):
    monkeypatch.setattr(cost_scaling, "BASE", {"batch": 2, "width": 0.125, "size": 16})
    monkeypatch.setattr(cost_scaling, "QUICK_AXES", {"batch": (2, 3)})
    rows = cost_scaling.main(["--quick", "--reps", "1", "--variants", "fa", "--out", str(tmp_path)])
    assert {r["variant"] for r in rows} == {"plain autograd", "fa"} and len(rows) == 4
    fa = next(r for r in rows if r["variant"] == "fa" and r["batch"] == 2)
    # fa keeps B (one weight-sized buffer per layer): more memory than plain autograd, never less
    assert fa["memory_ratio"] > 1.0 and fa["ratio"] > 0
    assert {p.name for p in tmp_path.iterdir()} == {"cost_scaling.csv", "cost_scaling.md", "cost_scaling.png"}
    assert "| fa |" in (tmp_path / "cost_scaling.md").read_text()


def test_apply_cost_measures_one_conversion():
    import torchvision

    torch.manual_seed(0)
    row = apply_cost.measure_one("resnet18", "sign_symmetry.yaml")
    assert row["layers"] == 21 and row["apply_s"] > 0
    # sign symmetry's one buffer per layer, the size of W: resnet18's 11.69M conv/linear weights in float32
    convs_and_linears = (torch.nn.Conv2d, torch.nn.Linear)
    weights = sum(m.weight.numel() for m in torchvision.models.resnet18().modules() if isinstance(m, convs_and_linears))
    assert abs(row["kept_tensors_mb"] - 4 * weights / 2**20) < 0.01
