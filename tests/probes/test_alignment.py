"""Probes: angles against values computed by hand, bp gives zeros, FA's error angle falls below 90 degrees,
and probing leaves training bit-identical."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.train.checkpoint import load_checkpoint
from biocircuits.train.trainer import run_experiment

from ..builders import build_mlp


def deg(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    return math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b / (a.norm() * b.norm()))))))


def two_layer(rule):
    model = build_mlp(5, 7, 3, act=nn.Tanh, dtype=torch.float64, seed=0)
    return bc.apply(model, {"feedback": {"rule": rule, "seed": 2}})


@pytest.mark.parametrize("rule", ["fa", "sign_symmetry"])
def test_angles_match_hand_computation(rule):
    model = two_layer(rule)
    x = torch.randn(11, 5, dtype=torch.double)
    y = torch.randint(0, 3, (11,))
    stats = bc.probe(model, x, y, loss_fn=F.cross_entropy)
    W1, W2 = model[0].weight.detach(), model[2].weight.detach()
    B1, B2 = model[0].backward_weight(), model[2].backward_weight()
    h = torch.tanh(x @ W1.T + model[0].bias.detach())
    out = h @ W2.T + model[2].bias.detach()
    delta2 = (torch.softmax(out, 1) - F.one_hot(y, 3).double()) / 11  # dL/dy2 of mean cross-entropy
    e1_bp = (delta2 @ W2) * (1 - h**2)
    e1_rule = (delta2 @ B2) * (1 - h**2)
    s0, s2 = stats["0"], stats["2"]
    assert s0.weight_angle == pytest.approx(deg(W1, B1), abs=1e-9)
    assert s2.weight_angle == pytest.approx(deg(W2, B2), abs=1e-9)
    assert s0.error_angle == pytest.approx(deg(e1_rule, e1_bp), abs=1e-7)
    assert s0.update_angle == pytest.approx(deg(e1_rule.T @ x, e1_bp.T @ x), abs=1e-7)
    assert s2.error_angle == pytest.approx(0.0, abs=1e-5) and s2.update_angle == pytest.approx(0.0, abs=1e-5)
    assert s0.norm_ratio == pytest.approx(float(B1.norm() / W1.norm()))
    assert s0.sign_concordance == pytest.approx(float((torch.sign(B1) == torch.sign(W1)).double().mean()))
    if rule == "sign_symmetry":
        assert s0.sign_concordance == 1.0
    assert s0.error_angle > 1.0  # the rule really differs from bp here


def test_bp_every_angle_zero():
    model = two_layer("bp")
    stats = bc.probe(model, torch.randn(9, 5, dtype=torch.double), torch.randint(0, 3, (9,)))
    for s in stats.values():
        for a in (s.weight_angle, s.error_angle, s.update_angle):
            assert a == pytest.approx(0.0, abs=1e-5)
        assert s.sign_concordance == 1.0 and s.norm_ratio == pytest.approx(1.0)


def test_zero_vector_gives_nan_with_reason():
    model = two_layer("bp")
    with torch.no_grad():
        model[2].weight.zero_()
    stats = bc.probe(model, torch.randn(4, 5, dtype=torch.double), torch.randint(0, 3, (4,)))
    assert math.isnan(stats["2"].weight_angle) and "zero vector" in stats["2"].reasons["weight_angle"]
    assert math.isnan(stats["0"].error_angle) and "zero" in stats["0"].reasons["error_angle"]


def test_fa_large_layer_starts_near_90_degrees():
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Linear(600, 500), nn.ReLU(), nn.Linear(500, 10)), {"feedback": {"rule": "fa"}})
    stats = bc.probe(model, torch.randn(32, 600), torch.randint(0, 10, (32,)))
    assert abs(stats["0"].weight_angle - 90) < 3 and abs(stats["2"].weight_angle - 90) < 10


def test_fa_error_angle_falls_below_90_and_keeps_falling():
    """Lillicrap et al. 2016: on a linear teacher task the hidden error signal under FA turns to within 90
    degrees of backprop's, and W2 turns to align with B2."""
    torch.manual_seed(0)
    teacher = torch.randn(10, 30) / 30**0.5
    model = bc.apply(nn.Sequential(nn.Linear(30, 20), nn.Linear(20, 10)), {"feedback": {"rule": "fa", "seed": 1}})
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    xs = torch.randn(64, 30)
    angles, weight_angles = [], []
    for step in range(600):
        x = torch.randn(32, 30)
        loss = F.mse_loss(model(x), x @ teacher.T)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == 599:
            stats = bc.probe(model, xs, xs @ teacher.T, loss_fn=F.mse_loss)
            angles.append(stats["0"].error_angle)
            weight_angles.append(stats["1"].weight_angle)
    # measured: 83.7, 67.4, 66.5, 70.4, 67.9, 63.3, 60.1 degrees at steps 0, 100, ..., 500, 599
    assert all(a < 90 for a in angles)
    assert angles[-1] < angles[1] < angles[0] - 10
    assert weight_angles[-1] < weight_angles[0] - 25  # W2 aligns with B2 (measured 78.6 -> 47.2 degrees)


def test_probe_leaves_training_bit_identical(tmp_path):
    def run(probe_every):
        exp = Experiment.from_dict(
            {
                "name": "p",
                "constraints": {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "random_batch"}}},
                "data": {"name": "digits"},
                "model": {"name": "convnet", "kwargs": {"channels": [4], "hidden": 8}},
                "train": {"steps": 8, "batch_size": 16, "probe_every": probe_every, "deterministic": True},
            }
        )
        run_experiment(exp, tmp_path / str(probe_every))
        return load_checkpoint(tmp_path / str(probe_every) / "checkpoint.pt")

    with_probe, without = run(1), run(None)
    for k, v in without["model"].items():
        assert torch.equal(with_probe["model"][k], v), k
    assert torch.equal(with_probe["rng"]["torch"], without["rng"]["torch"])
    rows = (tmp_path / "1" / "metrics.jsonl").read_text()
    assert rows.count('"kind": "probe"') == 8 * 3  # 3 converted layers (conv, two linear), every step
