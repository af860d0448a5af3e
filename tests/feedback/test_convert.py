"""Conversion of whole networks: torchvision models, overrides, exclude, state dicts, errors."""

import copy

import pytest
import torch
import torchvision
from torch import nn

import biocircuits as bc


def mlp():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize("name", ["resnet18", "alexnet", "vgg11", "mobilenet_v3_small"])
def test_torchvision_models_convert_and_train(name):
    model = getattr(torchvision.models, name)(num_classes=5)
    n_plain = sum(type(m) in (nn.Linear, nn.Conv2d) for m in model.modules())
    keys = list(model.state_dict())
    bc.apply(model, "constraints/sign_symmetry.yaml")
    assert len(bc.feedback_layers(model)) == n_plain
    assert all(isinstance(m, nn.Module) for _, m in bc.feedback_layers(model))
    assert set(keys) <= set(model.state_dict())
    size = 64 if name != "alexnet" else 96
    model(torch.randn(2, 3, size, size)).logsumexp(1).sum().backward()
    assert all(m.weight.grad is not None for _, m in bc.feedback_layers(model))


def test_torchvision_weights_load_into_converted_model():
    src = torchvision.models.resnet18(num_classes=7)
    dst = bc.apply(torchvision.models.resnet18(num_classes=7), {"feedback": {"rule": "fa"}})
    fb = dst.fc.feedback_weight.clone()
    dst.load_state_dict(src.state_dict())  # strict: the rule's buffers are optional
    assert torch.equal(dst.fc.weight, src.fc.weight) and torch.equal(dst.fc.feedback_weight, fb)
    again = bc.apply(torchvision.models.resnet18(num_classes=7), {"feedback": {"rule": "fa", "seed": 9}})
    again.load_state_dict(dst.state_dict())
    assert torch.equal(again.fc.feedback_weight, fb)  # saved random feedback is restored


def test_bp_resnet18_equals_plain_autograd():
    torch.manual_seed(0)
    plain = torchvision.models.resnet18(num_classes=10).double()
    conv = bc.apply(copy.deepcopy(plain), "constraints/bp.yaml")
    x = torch.randn(2, 3, 48, 48, dtype=torch.double)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = torch.randint(0, 10, (2,))
    nn.functional.cross_entropy(plain(xa), y).backward()
    nn.functional.cross_entropy(conv(xb), y).backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-6, rtol=0)
    for (na, pa), (nb, pb) in zip(plain.named_parameters(), conv.named_parameters(), strict=True):
        assert na == nb
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6, rtol=0), na


def test_overrides_last_wins_and_exclude():
    model = mlp()
    bc.apply(model, {"feedback": {
        "rule": "fa",
        "overrides": {"*": "sign_symmetry", "4": {"rule": "bp"}, "[02]": {"rule": "sign_symmetry",
                                                                        "options": {"magnitude": "unit"}}},
        "exclude": ["2"],
    }})
    assert type(model[2]) is nn.Linear
    assert model[0].rule.name == "sign_symmetry" and model[0].rule.options.magnitude == "unit"
    assert model[4].rule.name == "bp"


def test_conversion_keeps_device_dtype_memory_format():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).double().to(
        memory_format=torch.channels_last)
    bc.apply(model, {"feedback": {"rule": "fa"}})
    assert model[2].weight.dtype == torch.double
    assert model[2].feedback_weight.dtype == torch.double
    assert model[2].feedback_weight.is_contiguous(memory_format=torch.channels_last)
    assert model[2].weight.is_contiguous(memory_format=torch.channels_last)


def test_conversion_errors():
    model = bc.apply(mlp(), {"feedback": {"rule": "fa"}})
    with pytest.raises(bc.ConfigError, match="already converted"):
        bc.apply(model, {"feedback": {"rule": "fa"}})
    with pytest.raises(bc.ConfigError, match="matches no convertible module.*0, 2, 4"):
        bc.apply(mlp(), {"feedback": {"overrides": {"5": "fa"}}})
    with pytest.raises(bc.ConfigError, match="unknown feedback rule"):
        bc.apply(mlp(), {"feedback": {"rule": "backprop"}})
    with pytest.raises(bc.ConfigError, match="does not take option"):
        bc.apply(mlp(), {"feedback": {"rule": "bp", "options": {"magnitude": "unit"}}})


def test_describe_lists_layers(capsys):
    model = bc.apply(mlp(), {"feedback": {"rule": "fa", "exclude": ["4"]}})
    text = bc.describe(model)
    assert "FeedbackLinear" in text and "16x8" in text and "(plain torch)" in text
    assert capsys.readouterr().out.strip() == text.strip()
