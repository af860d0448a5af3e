"""``error_filter``: the cascade (every layer filters what the filtered layer above sent down) and the single stage
at the model's output (``cascade: false``), each against its recursion by hand, and the lag each layer sees."""

import math

import pytest
import torch
from torch import nn

import biocircuits as bc
from biocircuits.phases.transforms import mean_lag

from .test_streams import N_OUT, B, data, forward, output_error, run


@pytest.mark.parametrize("rule", ["bp", "sign_symmetry", "fa"])
def test_the_output_stage_is_filtered_once_and_sent_down_through_the_current_state(rule):
    batches, tau = data(4), 2.0
    a = math.exp(-1 / tau)
    model, steps = run(rule, {"error_filter": {"tau": tau, "cascade": False}}, batches)
    assert "filtered_output_error" in model.state_dict()
    assert not any("filtered_error" in k.split(".")[-1] for k in model.state_dict())  # no per-layer stage
    e = torch.zeros(B, N_OUT, dtype=torch.float64)
    for (w, (g1, g2), b2), (x, y) in zip(steps, batches, strict=True):
        h, out = forward(w, x)
        e = a * e + (1 - a) * output_error(out, y)
        assert torch.allclose(g2, e.T @ h, atol=1e-12)
        assert torch.allclose(g1, ((e @ b2) * (1 - h**2)).T @ x, atol=1e-12)


def test_the_output_stage_filters_the_late_error():
    batches, tau = data(5), 1.5
    a = math.exp(-1 / tau)
    _, steps = run(
        "fa", {"error_filter": {"tau": tau, "cascade": False}, "error_delay": 2, "backward_state": "current"}, batches
    )
    e, queue = torch.zeros(B, N_OUT, dtype=torch.float64), []
    for t, ((w, (g1, g2), b2), (x, y)) in enumerate(zip(steps, batches, strict=True)):
        h, out = forward(w, x)
        late = queue[t - 2] if t >= 2 else torch.zeros(B, N_OUT, dtype=torch.float64)
        e = a * e + (1 - a) * late
        assert torch.allclose(g2, e.T @ h, atol=1e-12)
        assert torch.allclose(g1, ((e @ b2) * (1 - h**2)).T @ x, atol=1e-12)
        queue.append(output_error(out, y))


def test_cascade_false_with_tau_zero_is_off():
    plain, _ = run("fa", {}, data(2))
    off, _ = run("fa", {"error_filter": {"tau": 0, "cascade": False}}, data(2))
    assert off.state_dict().keys() == plain.state_dict().keys()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, off.state_dict()[k])


def impulse_lags(filter_spec, steps=240):
    """The mean lag (steps) of each layer's weight gradient after one output error at step 0, in a fixed
    (lr 0) linear 3-layer chain: the gradient of layer l at step t is h_l(t) times the unfiltered one, and the
    lag is sum_t t h_l(t) / sum_t h_l(t)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(3, 4, bias=False), nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False)
    ).double()
    bc.apply(model, {"feedback": {"rule": "bp"}, "phases": {"error_filter": filter_spec}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.0), model)
    x, c = torch.randn(1, 3, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64)
    weights = [m.weight.detach().clone().requires_grad_() for m in model]
    raw = torch.autograd.grad((x @ weights[0].T @ weights[1].T @ weights[2].T * c).sum(), weights)  # unfiltered
    response = [[] for _ in range(3)]
    for t in range(steps):
        (model(x) * c * (1.0 if t == 0 else 0.0)).sum().backward()
        for i in range(3):
            response[i].append(float((model[i].weight.grad * raw[i]).sum() / raw[i].pow(2).sum()))
        opt.step()
        opt.zero_grad()
    lags = []
    for h in response:
        h = torch.tensor(h, dtype=torch.float64)
        assert h.sum() == pytest.approx(1.0, abs=1e-9)  # a low-pass filter passes the error's total
        lags.append(float((torch.arange(steps) * h).sum() / h.sum()))
    return lags


def test_the_cascade_lag_grows_by_one_stage_per_layer():
    tau = 4.0
    a = math.exp(-1 / tau)
    first, middle, last = impulse_lags(tau)
    assert last == pytest.approx(a / (1 - a), abs=1e-9) and last == pytest.approx(3.52, abs=0.01)
    assert middle == pytest.approx(2 * a / (1 - a), abs=1e-9) and middle == pytest.approx(7.04, abs=0.01)
    assert first == pytest.approx(3 * a / (1 - a), abs=1e-9)
    assert [first, middle, last] == pytest.approx([mean_lag(tau, 3), mean_lag(tau, 2), mean_lag(tau, 1)])


def test_the_output_stage_gives_every_layer_the_same_lag():
    tau = 4.0
    a = math.exp(-1 / tau)
    assert impulse_lags({"tau": tau, "cascade": False}) == pytest.approx([a / (1 - a)] * 3, abs=1e-9)


def test_cascade_option_is_validated():
    with pytest.raises(bc.ConfigError) as err:
        bc.apply(nn.Linear(2, 2), {"phases": {"error_filter": {"tau": 2, "cascade": "sometimes"}}})
    assert "phases.error_filter.cascade" in str(err.value)
    with pytest.raises(bc.ConfigError) as err:
        bc.apply(nn.Linear(2, 2), {"phases": {"error_filter": {"tau": 2, "stages": 1}}})
    assert "cascade" in str(err.value)


def test_micro_batches_are_rows_of_the_same_output_stage():
    phases = {"error_delay": 1, "backward_state": "current", "error_filter": {"tau": 1.5, "cascade": False}}
    whole, _ = run("sign_symmetry", phases, data(4))
    split, _ = run("sign_symmetry", phases, data(4), accum=3)
    for (k, a), b in zip(whole.state_dict().items(), split.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-12), k


def test_remove_takes_the_output_stage_away():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    plain = set(model.state_dict())
    bc.apply(model, {"phases": {"error_filter": {"tau": 2, "cascade": False}}})
    assert set(model.state_dict()) > plain
    bc.remove(model)
    assert set(model.state_dict()) == plain
    assert not model._forward_hooks and not model._forward_pre_hooks
