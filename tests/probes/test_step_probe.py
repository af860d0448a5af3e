"""The update angle of a training step (StepProbe): the gradient the optimiser receives vs exact backprop's on the
same step's batch, with the hand-computed exact gradient of a 2-layer MLP as the reference."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.config.constraints import Constraints
from biocircuits.probes import StepProbe, angle
from biocircuits.train.trainer import run_experiment

from ..builders import build_batches, build_mlp
from ..train.helpers import tiny_experiment


def setup(phases, rule="fa"):
    model = build_mlp(5, 6, 3, act=nn.Tanh, dtype=torch.float64, seed=0)
    bc.apply(model, {"feedback": {"rule": rule}, "phases": phases})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    return model, opt, StepProbe(model, opt)


def exact_grad_w1(model, batches):
    """dL/dW1 by hand: mean over micro-batches of (((softmax(y) - onehot) / B) W2 * (1 - h^2))^T x."""
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    total = torch.zeros_like(w1)
    for x, y in batches:
        h = torch.tanh(x @ w1.T + b1)
        out = h @ w2.T + b2
        e = (torch.softmax(out, 1) - F.one_hot(y, 3).double()) / len(x)
        total += ((e @ w2) * (1 - h**2)).T @ x / len(batches)
    return total


def train(phases, probed):
    """3 steps of 2 micro-batches; the probe armed at every step when ``probed``: (model, angles, hand angles)."""
    model, opt, probe = setup(phases)
    drawn = build_batches(6, 4, 5, 3, seed=0)  # 3 steps x 2 micro-batches, drawn in order from one generator
    measured, hand = [], []
    for t in range(3):
        batches = drawn[2 * t : 2 * t + 2]
        if probed:
            probe.arm()
        for x, y in batches:
            probe.add(x, y)
            (F.cross_entropy(model(x), y) / 2).backward()
        hand.append(angle(model[0].weight.grad, exact_grad_w1(model, batches))[0])
        opt.step()
        opt.zero_grad()
        measured.append(dict(probe.angles))
    return model, measured, hand


@pytest.mark.parametrize("phases", [{}, {"error_delay": 1, "backward_state": "current", "error_filter": 2}])
def test_step_angle_compares_the_applied_gradient_with_exact_backprop(phases):
    model, measured, hand = train(phases, probed=True)
    for step, (angles, want) in enumerate(zip(measured, hand, strict=True)):
        assert set(angles) == {"0", "2"}
        if step == 0 and phases:
            assert angles["0"] != angles["0"]  # no error has arrived yet (zero gradient): NaN
        else:
            assert angles["0"] == pytest.approx(want, abs=1e-6)
    quiet, _, _ = train(phases, probed=False)  # measuring disturbs nothing: same weights, traces, queues
    for (k, a), b in zip(model.state_dict().items(), quiet.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_the_runner_logs_the_step_angle(tmp_path):
    exp = tiny_experiment(tmp_path, steps=6, probe_every=3, probe_batch=32)
    exp = exp.model_copy(
        update={
            "constraints": Constraints.from_dict(
                {"feedback": {"rule": "bp"}, "phases": {"error_delay": 2, "backward_state": "current"}}
            )
        }
    )
    run_experiment(exp, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in rows if r["kind"] == "probe"]
    assert {r["step"] for r in probes} == {3, 6}
    # bp's clean update angle is 0; the late error moves the applied update away from backprop's
    assert all(r["update_angle"] < 1 for r in probes)
    assert all(r["step_update_angle"] > 5 for r in probes), [r["step_update_angle"] for r in probes]
