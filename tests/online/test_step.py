"""The training step with an online rule (biocircuits/recurrent/step.py) and the rules' refusals: the forward phase
fills .grad through the learner, the update phase is the usual optimiser step (with Dale's projection)."""

import copy

import pytest
import torch

import biocircuits as bc
from biocircuits.errors import ConfigError
from biocircuits.models import build_model
from biocircuits.phases.step import PhasedStep
from biocircuits.recurrent import OnlineStep, online_learner, online_step

DALE = {"layers": ["recurrent", "readout"], "types": "per_layer", "excitatory_fraction": 0.8, "init": "keep"}


def _rate(spec, **kwargs):
    torch.manual_seed(0)
    m = build_model("rate_rnn", (6, 3), 2, {"n_hidden": 8, "activation": "tanh", **kwargs})
    return bc.apply(m, spec)


def _batch(seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(4, 6, 3, generator=gen), torch.randint(-1, 2, (4, 6), generator=gen)


def test_step_is_learner_gradient_then_sgd_with_accumulation():
    m = _rate({"feedback": {"rule": "eprop", "options": {"feedback": "random"}}})
    ref = copy.deepcopy(m)
    opt = bc.bind(torch.optim.SGD(m.parameters(), lr=0.5), m)
    step = online_step(PhasedStep(m, opt, lambda out, y: out.sum(), accum=2), m)
    assert isinstance(step, OnlineStep)
    (x1, y1), (x2, y2) = _batch(1), _batch(2)
    for i, (x, y) in enumerate(((x1, y1), (x2, y2))):
        ctx = step.forward(x, y, 0)
        step.backward(ctx, sync=i == 1)
        assert ctx.outputs.shape == (4, 6, 2) and ctx.loss.grad_fn is None
    step.update(ctx)
    learner = online_learner(ref)
    learner.accumulate(x1, y1, scale=0.5)
    learner.accumulate(x2, y2, scale=0.5)
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p, q - 0.5 * q.grad, atol=1e-7, rtol=0), name
        assert p.grad is None


def test_other_models_keep_the_phased_step():
    m = _rate({"feedback": {"rule": "fa"}})
    phased = PhasedStep(m, torch.optim.SGD(m.parameters(), lr=0.1), lambda out, y: out.sum())
    assert online_step(phased, m) is phased and online_learner(m) is None


@pytest.mark.parametrize("rule", ["eprop", "rflo"])
def test_dale_column_signs_hold_after_online_steps(rule):
    m = _rate({"feedback": {"rule": rule}, "dale": DALE}, dale=0.8, self_connections=False)
    opt = bc.bind(torch.optim.SGD(m.parameters(), lr=2.0), m)
    step = online_step(PhasedStep(m, opt, lambda out, y: out.sum()), m)
    before = m.recurrent.weight.detach().clone()
    for seed in range(5):
        ctx = step.forward(*_batch(seed), seed)
        step.backward(ctx)
        step.update(ctx)
    assert bc.audit(m).violations == 0
    assert not torch.equal(before, m.recurrent.weight)
    assert float(m.recurrent.weight.detach().diagonal().abs().max()) == 0.0  # no self-connections: the diagonal stays 0


@pytest.mark.parametrize(
    "model,spec,key",
    [
        ("mlp", {"feedback": {"rule": "eprop"}}, "feedback.rule"),
        ("lif_rnn", {"feedback": {"rule": "rflo"}}, "feedback.rule"),
        ("rate_rnn", {"feedback": {"rule": "eprop", "overrides": {"readout": "bp"}}}, "feedback.overrides"),
        ("lif_rnn", {"feedback": {"rule": "eprop"}, "phases": {"interference": 0.1}}, "phases.interference"),
        ("rate_rnn", {"feedback": {"rule": "eprop"}, "dale": {"enforce": "softplus"}}, "dale.enforce"),
        ("rate_rnn", {"feedback": {"rule": "rflo"}, "dale": {"architecture": "dann"}}, "dale.architecture"),
    ],
)
def test_unsupported_models_and_settings_are_refused(model, spec, key):
    m = build_model(model, (6, 3), 2, {})
    state = copy.deepcopy(m.state_dict())
    with pytest.raises(ConfigError) as err:
        bc.apply(m, spec)
    assert key in str(err.value)
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())  # left as it was


def test_amp_is_refused():
    m = _rate({"feedback": {"rule": "eprop"}})
    phased = PhasedStep(m, torch.optim.SGD(m.parameters(), lr=0.1), lambda out, y: out.sum(), amp_dtype=torch.bfloat16)
    with pytest.raises(ConfigError, match="train.amp"):
        online_step(phased, m)


def test_random_feedback_is_saved_and_removed_with_the_model():
    m = _rate({"feedback": {"rule": "eprop", "options": {"feedback": "random"}}})
    plain_keys = set(build_model("rate_rnn", (6, 3), 2, {"n_hidden": 8}).state_dict())
    assert set(m.state_dict()) == plain_keys | {"readout.feedback_weight"}
    again = _rate({"feedback": {"rule": "eprop", "options": {"feedback": "random"}}})
    assert torch.equal(again.readout.feedback_weight, m.readout.feedback_weight)  # seeded by (seed, layer)
    bc.remove(m)
    assert set(m.state_dict()) == plain_keys
