"""``bc.apply`` / ``bc.remove``: remove undoes apply (plain classes, same weights, same state_dict keys)."""

import copy

import pytest
import torch
import torchvision
from torch import nn

import biocircuits as bc
from biocircuits.core.interface import attachments_of

EVERYTHING = {
    "feedback": {"rule": "sign_symmetry", "overrides": {"fc": "fa"}},
    "phases": {
        "error_noise": 0.2,
        "error_delay": 1,
        "backward_state": "trace",
        "trace_decay": 0.5,
        "error_filter": 2,
        "interference": 0.1,
    },
    "plasticity": {"update": "batch_manhattan", "rules": [{"match": {"layers": "layer1.*"}, "lr_scale": 0.5}]},
}


def outputs_and_grads(model, x):
    model.zero_grad()
    out = model(x)
    out.square().sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_remove_gives_back_the_original_model():
    torch.manual_seed(0)
    original = torchvision.models.resnet18(num_classes=5).eval()
    model = copy.deepcopy(original)
    bc.apply(model, EVERYTHING)
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    assert bc.remove(model) is model
    assert not hasattr(model, "biocircuits") and all(attachments_of(m) is None for m in model.modules())
    assert all(type(a) is type(b) for a, b in zip(model.modules(), original.modules(), strict=True))
    assert list(model.state_dict()) == list(original.state_dict())
    x = torch.randn(2, 3, 32, 32)
    out, grads = outputs_and_grads(model, x)
    want_out, want_grads = outputs_and_grads(original, x)
    assert torch.equal(out, want_out)
    for name, g in want_grads.items():
        assert torch.equal(grads[name], g), name
    opt.step()  # the optimiser's constraint hooks are gone: a plain SGD step on the plain gradients
    torch.optim.SGD(original.parameters(), lr=0.1).step()
    for (name, p), q in zip(model.named_parameters(), original.parameters(), strict=True):
        assert torch.equal(p.detach(), q.detach()), name


@pytest.mark.parametrize("enforce", ["project", "abs", "softplus"])
def test_remove_folds_dale_into_plain_weights(enforce):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    plain_keys = list(model.state_dict())
    bc.apply(model, {"feedback": {"rule": "fa"}, "dale": {"enforce": enforce}})
    constrained = model[2].weight.detach().clone()
    x = torch.rand(4, 6)
    with torch.no_grad():
        want = model(x)
    bc.remove(model)
    assert type(model[2]) is nn.Linear and list(model.state_dict()) == plain_keys
    assert torch.equal(model[2].weight.detach(), constrained)
    with torch.no_grad():
        assert torch.allclose(model(x), want, atol=1e-6)
    bc.apply(model, {"feedback": {"rule": "sign_symmetry"}})  # a removed model can be converted afresh


def test_failed_apply_leaves_the_model_unconverted():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(bc.ConfigError, match="dale.layers"):
        bc.apply(model, {"feedback": {"rule": "fa"}, "dale": {"layers": ["nope"]}})
    assert type(model[0]) is nn.Linear and "0.feedback_weight" not in model.state_dict()
    with pytest.raises(bc.ConfigError, match="has not been converted"):
        bc.remove(model)


def test_apply_failing_late_restores_the_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))  # no linear output: dfa refuses
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(bc.ConfigError, match="dfa needs a linear output layer"):
        bc.apply(model, {"feedback": {"rule": "dfa"}, "dale": {"enforce": "abs", "exempt": []}})
    assert all(type(m) in (nn.Conv2d, nn.ReLU, nn.Sequential) for m in model.modules())
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())
