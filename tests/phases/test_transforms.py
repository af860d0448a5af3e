"""Error-pathway perturbations: each one's defining property, zero perturbation = none, exact resume."""

import math

import pytest
import torch
from torch import nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.core.interface import attachments_of
from biocircuits.phases.transforms import quantize
from biocircuits.train.checkpoint import load_checkpoint
from biocircuits.train.trainer import run_experiment

from ..train.helpers import Kill


def test_quantisation_is_unbiased_and_bounded():
    torch.manual_seed(0)
    e = torch.randn(50)
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([quantize(e, 4, gen) for _ in range(4000)])
    step = e.abs().max() / 4
    assert torch.all((draws / step - torch.round(draws / step)).abs() < 1e-4)  # integer spike counts
    assert draws.abs().max() <= e.abs().max() + 1e-6
    # E[q] = e: each unit's sample mean within 5 standard errors (Bernoulli variance <= step^2 / 4)
    se = step / 2 / math.sqrt(len(draws))
    assert torch.all((draws.mean(0) - e).abs() < 5 * se)


def capture_errors(phases, seed=0):
    """The error the first layer's backward receives, with and without the perturbation."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 400), nn.Tanh(), nn.Linear(400, 3))
    bc.apply(model, {"feedback": {"rule": "fa"}, "phases": phases})
    seen = []
    model[0].register_full_backward_hook(lambda m, gin, gout: seen.append(gout[0].detach().clone()))
    x = torch.randn(64, 6)
    model(x).pow(2).sum().backward()
    return model, seen[0]


def test_noise_has_the_stated_relative_size():
    _, clean = capture_errors({})
    _, noisy = capture_errors({"error_noise": 0.3})
    rel = (noisy - clean).pow(2).mean().sqrt() / clean.pow(2).mean().sqrt()
    assert rel == pytest.approx(0.3, rel=0.05)


def test_zero_perturbation_is_bit_identical_to_none():
    a, ea = capture_errors({})
    b, eb = capture_errors(
        {"error_noise": 0.0, "error_quantization": 0, "error_delay": 0, "error_filter": 0, "interference": 0.0}
    )
    assert torch.equal(ea, eb)
    assert attachments_of(a[0]).error_pathway is None and attachments_of(b[0]).error_pathway is None
    assert not attachments_of(b[0]).of("transform")
    assert set(dict(b.named_buffers())) == set(dict(a.named_buffers()))


def delivered_grads(phases, steps=6):
    """(raw gradient of each step, gradient the optimiser applied at each step) for a linear layer."""
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Linear(3, 2)), {"feedback": {"rule": "bp"}, "phases": phases})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=1.0), model)
    raw, applied = [], []
    model[0].weight.register_hook(lambda g: raw.append(g.detach().clone()))
    for t in range(steps):
        before = model[0].weight.detach().clone()
        opt.zero_grad()
        model(torch.full((1, 3), float(t + 1))).sum().backward()
        opt.step()
        applied.append(before - model[0].weight.detach())
    return raw, applied


@pytest.mark.parametrize("k", [1, 3])
def test_delay_is_exactly_k_steps(k):
    raw, applied = delivered_grads({"error_delay": k})
    for t in range(6):
        expected = raw[t - k] if t >= k else torch.zeros_like(raw[0])
        assert torch.allclose(applied[t], expected, atol=1e-6), t


@pytest.mark.parametrize("state, cascade", [("stored", True), ("trace", True), ("current", False)])
def test_perturbation_state_resumes_exactly(tmp_path, state, cascade):
    def exp():
        return Experiment.from_dict(
            {
                "name": "ph",
                "data": {"name": "digits"},
                "model": {"name": "mlp", "kwargs": {"hidden": [16]}},
                "constraints": {
                    "feedback": {"rule": "fa"},
                    "phases": {
                        "error_noise": 0.2,
                        "error_quantization": 8,
                        "error_delay": 2,
                        "backward_state": state,
                        "trace_decay": 0.3 if state == "trace" else None,
                        "error_filter": {"tau": 2, "cascade": cascade},
                        "interference": 0.1,
                    },
                },
                "train": {"steps": 12, "batch_size": 16, "deterministic": True},
            }
        )

    assert run_experiment(exp(), tmp_path / "cut", callbacks=[Kill(5)])["interrupted"]
    run_experiment(exp(), tmp_path / "cut", resume=True)
    run_experiment(exp(), tmp_path / "whole")
    a = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    queue = "delay_queue" if state == "stored" else "late_error_queue"
    assert any(queue in k for k in b) and any("filtered_" in k for k in b)
    for k in b:
        assert torch.equal(a[k], b[k]), k


def test_stored_delay_leaves_tensors_the_optimiser_does_not_own(mlp):
    """DANN with only the interneurons and the bias of layer 2 trained: W_EE's gradient only accumulates (nothing
    zeroes or steps it), so the stored delay must neither queue it nor swap it; the bias is delayed as usual."""
    torch.manual_seed(0)
    model = bc.apply(mlp(6, 20, 10, 3), {"dale": {"architecture": "dann"}, "phases": {"error_delay": 1}})
    layer = model[2]
    p = layer.parametrizations.weight[0]
    opt = bc.bind(torch.optim.SGD([p.weight_ie, p.weight_ei, layer.bias], lr=0.1), model)
    out = model(torch.rand(5, 6))
    (out * torch.randn(out.shape)).sum().backward()
    w_ee_grad, bias_grad = layer.parametrizations.weight.original.grad.clone(), layer.bias.grad.clone()
    ie_grad, ei_grad = p.weight_ie.grad.clone(), p.weight_ei.grad.clone()
    before = [t.detach().clone() for t in (layer.bias, p.weight_ie, p.weight_ei)]
    opt.step()
    assert float(w_ee_grad.abs().max()) > 0
    assert torch.equal(layer.delay_queue_weight, torch.zeros_like(layer.delay_queue_weight))
    assert torch.equal(layer.parametrizations.weight.original.grad, w_ee_grad)  # not swapped for a queued zero
    # the bias's and the interneurons' steps wait one step: their gradients are queued, the tensors unchanged
    assert torch.equal(layer.delay_queue_bias[0], bias_grad)
    assert torch.equal(layer.delay_queue_weight_ie[0], ie_grad) and torch.equal(layer.delay_queue_weight_ei[0], ei_grad)
    assert all(torch.equal(t.detach(), b) for t, b in zip((layer.bias, p.weight_ie, p.weight_ei), before, strict=True))


def test_stored_delay_delays_every_dann_tensor_by_hand(mlp):
    """DANN + error_delay 2 under plain SGD: the update of W_EE, W_IE, W_EI and b at step t is -lr times the
    gradient of step t - 2 (zero for the first two steps; W_IE's scaled by 1/sqrt(n_e), W_EI's by 1/d as in the
    paper, the three synapse classes projected to >= 0), the gradients computed here by autograd on the
    parametrised layer at the weights each step saw (the hand reference keeps its own queue)."""
    torch.manual_seed(0)
    model = bc.apply(mlp(6, 12, 8, 3), {"dale": {"architecture": "dann"}, "phases": {"error_delay": 2}})
    layer = model[2]
    p = layer.parametrizations.weight[0]
    tensors = [layer.parametrizations.weight.original, p.weight_ie, p.weight_ei, layer.bias]
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.05), model)
    queue = []
    for step in range(5):
        x, probe = torch.rand(4, 6), torch.randn(4, 3)
        model.zero_grad()
        out = model(x)
        grads = torch.autograd.grad((out * probe).sum(), tensors, retain_graph=True)
        (out * probe).sum().backward()
        queue.append(grads)
        expected = None
        if step >= 2:  # W_EE, W_IE, W_EI projected to >= 0; the paper's scaling of the inhibitory updates
            n_e, d = tensors[0].shape
            scale = [1.0, 1.0 / math.sqrt(n_e), 1.0 / d, 1.0]
            expected = [t.detach() - 0.05 * c * g for t, c, g in zip(tensors, scale, queue[step - 2], strict=True)]
            expected = [e.clamp(min=0) if i < 3 else e for i, e in enumerate(expected)]
        before = [t.detach().clone() for t in tensors]
        opt.step()
        for i, t in enumerate(tensors):
            want = before[i] if expected is None else expected[i]
            assert torch.allclose(t.detach(), want, atol=1e-7), (step, i)
