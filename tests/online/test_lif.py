"""The LIF/ALIF model (biocircuits/recurrent/lif.py) against a hand loop of its equations, its surrogate gradient
against the pseudo-derivative, and BPTT from an experiment file."""

import math

import pytest
import torch

from biocircuits.errors import ConfigError
from biocircuits.models import build_model
from biocircuits.recurrent.lif import LIFRNN, SpikeFunction


@pytest.mark.parametrize("readout", ["voltage", "spike_count"])
def test_forward_equals_hand_loop(readout):
    torch.manual_seed(0)
    m = LIFRNN(
        2,
        3,
        2,
        dt=1.0,
        tau_mem=4.0,
        tau_adapt=10.0,
        beta=0.5,
        v_th=0.5,
        readout=readout,
        tau_out=5.0,
        bias=True,
        input_scale=3.0,
    ).double()
    x = torch.randn(2, 6, 2, dtype=torch.float64)
    alpha, rho = math.exp(-1 / 4), math.exp(-1 / 10)
    kappa = math.exp(-1 / 5) if readout == "voltage" else 1.0
    w_rec = m.recurrent.weight * (1 - torch.eye(3, dtype=torch.float64))
    expected = torch.zeros(2, 6, 2, dtype=torch.float64)
    spikes = 0.0
    for b in range(2):
        v, a, z = (torch.zeros(3, dtype=torch.float64) for _ in range(3))
        out = torch.zeros(2, dtype=torch.float64)
        for t in range(6):
            v = alpha * v + m.input.weight @ x[b, t] + w_rec @ z + m.recurrent.bias - 0.5 * z
            a = rho * a + z
            z = (v - 0.5 - 0.5 * a > 0).double()
            out = kappa * out + m.readout.weight @ z
            expected[b, t] = out + m.readout.bias
            spikes += float(z.sum())
    assert spikes > 0
    assert torch.allclose(m(x), expected, atol=1e-12, rtol=0)


def test_surrogate_gradient_is_the_pseudo_derivative():
    distance = torch.tensor([-1.5, -0.3, 0.0, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    z = SpikeFunction.apply(distance, 1.0, 0.3)
    z.backward(torch.ones_like(z))
    assert z.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    expected = [0.3 * max(0.0, 1 - abs(d)) for d in distance.tolist()]
    assert torch.allclose(distance.grad, torch.tensor(expected, dtype=torch.float64))


def test_registered_and_trainable_with_bptt():
    m = build_model("lif_rnn", (8, 3), 2, {"n_hidden": 6, "beta": 0.3, "input_scale": 4.0})
    x = torch.randn(4, 8, 3)
    m(x).sum().backward()
    assert m.input.weight.grad.abs().sum() > 0 and m.recurrent.weight.grad.abs().sum() > 0
    assert float(m.recurrent.weight.grad.diagonal().abs().max()) == 0.0  # no self-connections by default


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="readout"):
        LIFRNN(2, 3, 2, readout="rate")
    with pytest.raises(ConfigError, match="tau_mem"):
        LIFRNN(2, 3, 2, tau_mem=0.0)
