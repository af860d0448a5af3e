"""A failed ``bc.apply`` raises its ConfigError and leaves every module and tensor as it was; ``bc.remove`` keeps
the network's function (issue #23 item 6)."""

import sys

import pytest
import torch
import torchvision
from torch import nn

import biocircuits as bc


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


def test_failed_apply_on_mobilenet_raises_the_config_error_and_leaves_nothing():
    """dale_dann_sign_symmetry on mobilenet_v3_small fails inside the conversion of a depthwise conv (centred sign
    symmetry needs 2+ outputs per group): the error is that ConfigError, and the model is untouched."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    types = [(n, type(m)) for n, m in model.named_modules()]
    with pytest.raises(bc.ConfigError, match="centre needs more than one output per group"):
        bc.apply(model, "dale_dann_sign_symmetry")
    assert [(n, type(m)) for n, m in model.named_modules()] == types
    after = model.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], v) for k, v in state.items())
    assert _hooks(model) == 0 and not any("attachments" in m.__dict__ for m in model.modules())
    assert getattr(model, "biocircuits", None) is None
    bc.apply(model, "sign_symmetry")  # and it converts afresh


def test_failure_after_every_attachment_restores_weights_classes_and_hooks(monkeypatch):
    """A failure at apply's last stage (after Dale's signed init rewrote the weights, DANN parametrised a layer and
    the population norm hooked one) leaves the model as before: classes, state_dict, hooks."""

    def fail(model):
        raise bc.ConfigError("late failure", key="test")

    monkeypatch.setattr(sys.modules["biocircuits.apply"], "attach_groups", fail)
    for spec in ("dale", "dale_dann"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
        state = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(bc.ConfigError, match="late failure"):
            bc.apply(model, spec)
        assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear] and _hooks(model) == 0
        after = model.state_dict()
        assert list(after) == list(state) and all(torch.equal(after[k], v) for k, v in state.items())


@pytest.mark.parametrize("divisive", [False, True])
def test_remove_after_dann_keeps_the_function(divisive):
    """bc.remove folds W = W_EE - W_EI W_IE into the plain weight and keeps divisive inhibition as a forward hook on
    the plain layer: eval outputs equal before and after, same state_dict keys as the plain model."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 4)
    ).eval()
    keys = list(model.state_dict())
    bc.apply(model, {"dale": {"architecture": "dann", "dann": {"divisive": divisive}}})
    x = torch.rand(2, 3, 7, 7)
    with torch.no_grad():
        before = model(x)
    bc.remove(model)
    assert [type(m) for m in model] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear]
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        assert torch.allclose(model(x), before, atol=1e-6)
