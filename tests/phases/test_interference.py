"""``interference``: the feedback signal added to the activity at the activity's scale (default) or at its own
(``scale: error``), against the recursion by hand (as in ``test_streams``), and what each does to a small error."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc

from .test_streams import N_H, N_IN, N_OUT, B, data, output_error, run


@pytest.mark.parametrize("accum", [1, 3])
@pytest.mark.parametrize("rule", ["bp", "fa"])
def test_error_scale_adds_gamma_times_each_examples_error(rule, accum):
    batches, gamma = data(4), 0.7

    def inject(z, s):
        return z + gamma * B * s  # S = B streams; B s = each example's own error for the mean loss

    _, steps = run(rule, {"interference": {"gamma": gamma, "scale": "error"}}, batches, accum=accum)
    s1, s2 = torch.zeros(B, N_H, dtype=torch.float64), torch.zeros(B, N_OUT, dtype=torch.float64)
    for t, ((w, (g1, g2), b2), (x, y)) in enumerate(zip(steps, batches, strict=True)):
        w1, bias1, w2, bias2 = w
        h = torch.tanh(inject(x @ w1.T + bias1, s1))
        out = inject(h @ w2.T + bias2, s2)
        s2 = output_error(out, y)
        s1 = (s2 @ b2) * (1 - h**2)
        assert torch.allclose(g2, s2.T @ h, atol=1e-12), t
        assert torch.allclose(g1, s1.T @ x, atol=1e-12), t


def perturbation(scale, loss_scale):
    """rms of what interference adds to the network's output at the second step, for a loss multiplied by
    ``loss_scale`` (weights fixed: lr 0)."""
    outs = []
    for gamma in (0.0, 0.5):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(N_IN, N_H), nn.Tanh(), nn.Linear(N_H, N_OUT)).double()
        bc.apply(model, {"feedback": {"rule": "fa"}, "phases": {"interference": {"gamma": gamma, "scale": scale}}})
        opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.0), model)
        for x, y in data(2):
            out = model(x)
            (F.cross_entropy(out, y) * loss_scale).backward()
            opt.step()
            opt.zero_grad()
        outs.append(out.detach())
    return (outs[1] - outs[0]).pow(2).mean().sqrt()


def test_activity_scale_keeps_a_vanishing_error_at_the_activitys_size_and_error_scale_lets_it_fade():
    ratio = {scale: perturbation(scale, 1e-6) / perturbation(scale, 1.0) for scale in ("activity", "error")}
    assert ratio["activity"] == pytest.approx(1.0, rel=1e-6)  # never fades
    assert 1e-7 < ratio["error"] < 1e-5  # fades with the error (about 1e-6)


def test_scale_is_validated():
    with pytest.raises(bc.ConfigError) as err:
        bc.apply(nn.Linear(2, 2), {"phases": {"interference": {"gamma": 0.1, "scale": "loss"}}})
    assert "phases.interference.scale" in str(err.value)
