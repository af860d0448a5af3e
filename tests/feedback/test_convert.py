"""Conversion of whole networks: torchvision models, overrides, exclude, state dicts, errors."""

import copy

import pytest
import torch
import torchvision
from torch import nn

import biocircuits as bc


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


def test_overrides_last_wins_and_exclude(mlp):
    model = mlp(8, 16, 16, 4)
    bc.apply(
        model,
        {
            "feedback": {
                "rule": "fa",
                "overrides": {
                    "*": "sign_symmetry",
                    "4": {"rule": "bp"},
                    "[02]": {"rule": "sign_symmetry", "options": {"magnitude": "unit"}},
                },
                "exclude": ["2"],
            }
        },
    )
    assert type(model[2]) is nn.Linear
    assert model[0].rule.name == "sign_symmetry" and model[0].rule.options.magnitude == "unit"
    assert model[4].rule.name == "bp"


def test_conversion_keeps_device_dtype_memory_format():
    model = (
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).double().to(memory_format=torch.channels_last)
    )
    bc.apply(model, {"feedback": {"rule": "fa"}})
    assert model[2].weight.dtype == torch.double
    assert model[2].feedback_weight.dtype == torch.double
    assert model[2].feedback_weight.is_contiguous(memory_format=torch.channels_last)
    assert model[2].weight.is_contiguous(memory_format=torch.channels_last)


def test_conversion_errors(mlp):
    model = bc.apply(mlp(8, 16, 16, 4), {"feedback": {"rule": "fa"}})
    with pytest.raises(bc.ConfigError, match="already converted"):
        bc.apply(model, {"feedback": {"rule": "fa"}})
    with pytest.raises(bc.ConfigError, match="matches no convertible module.*0, 2, 4"):
        bc.apply(mlp(8, 16, 16, 4), {"feedback": {"overrides": {"5": "fa"}}})
    with pytest.raises(bc.ConfigError, match="unknown feedback rule"):
        bc.apply(mlp(8, 16, 16, 4), {"feedback": {"rule": "backprop"}})
    with pytest.raises(bc.ConfigError, match="does not take option"):
        bc.apply(mlp(8, 16, 16, 4), {"feedback": {"rule": "bp", "options": {"magnitude": "unit"}}})


def test_describe_lists_layers(capsys, mlp):
    model = bc.apply(mlp(8, 16, 16, 4), {"feedback": {"rule": "fa", "exclude": ["4"]}})
    text = bc.describe(model)
    assert "FeedbackLinear" in text and "16x8" in text and "(plain torch)" in text
    assert capsys.readouterr().out.strip() == text.strip()


class SameForwardLinear(nn.Linear):
    """A subclass that keeps nn.Linear's forward (like MultiheadAttention's NonDynamicallyQuantizableLinear)."""


class OwnForwardLinear(nn.Linear):
    """A subclass with its own forward, computing the same thing (like timm's ``Linear``)."""

    def forward(self, x):
        return nn.functional.linear(x, self.weight, self.bias)


def with_head(head_cls):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), head_cls(8, 3))


def test_subclass_with_the_standard_forward_is_converted_and_keeps_its_type():
    model = bc.apply(with_head(SameForwardLinear), {"feedback": {"rule": "fa"}})
    head = model[2]
    assert isinstance(head, bc.nn.FeedbackLinear) and isinstance(head, SameForwardLinear)
    x, c = torch.randn(5, 8, requires_grad=True), torch.randn(5, 3)
    (head(x) * c).sum().backward()
    assert torch.allclose(x.grad, c @ head.feedback_weight, atol=1e-6)  # the FA pathway, by hand
    bc.remove(model)
    assert type(model[2]) is SameForwardLinear


def test_weight_layer_that_cannot_be_converted_is_an_error_unless_mapped_or_excluded():
    with pytest.raises(bc.ConfigError, match=r"feedback: .*no feedback class.*'2 \(OwnForwardLinear\)'"):
        bc.apply(with_head(OwnForwardLinear), {"feedback": {"rule": "fa"}})
    model = with_head(OwnForwardLinear)
    bc.apply(model, {"feedback": {"rule": "fa"}}, mapping={OwnForwardLinear: bc.nn.FeedbackLinear})
    assert isinstance(model[2], OwnForwardLinear) and model[2].rule.name == "fa"
    x, c = torch.randn(5, 8, requires_grad=True), torch.randn(5, 3)
    (model[2](x) * c).sum().backward()
    assert torch.allclose(x.grad, c @ model[2].feedback_weight, atol=1e-6)
    excluded = bc.apply(with_head(OwnForwardLinear), {"feedback": {"rule": "fa", "exclude": ["2"]}})
    assert type(excluded[2]) is OwnForwardLinear
    assert type(bc.apply(with_head(OwnForwardLinear), {})[2]) is OwnForwardLinear  # bp everywhere: nothing to warn


def test_attention_and_transposed_convs_are_named():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ConvTranspose2d(4, 3, 3))
    with pytest.raises(bc.ConfigError, match=r"1 \(ConvTranspose2d\)"):
        bc.apply(model, {"feedback": {"rule": "sign_symmetry"}})

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True)  # not convertible
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            return self.proj(self.attn(x, x, x)[0])

    with pytest.raises(bc.ConfigError, match=r"attn \(MultiheadAttention\)"):
        bc.apply(Block(), {"feedback": {"rule": "fa"}})
    block = bc.apply(Block(), {"feedback": {"rule": "fa", "exclude": ["attn"]}})
    assert isinstance(block.proj, bc.nn.FeedbackLayer) and not isinstance(block.attn.out_proj, bc.nn.FeedbackLayer)
    block = Block()
    block.attn = nn.MultiheadAttention(8, 2, batch_first=True)  # convertible, but excluded: out_proj stays plain
    bc.apply(block, {"feedback": {"rule": "fa", "exclude": ["attn"]}})
    assert type(block.attn) is nn.MultiheadAttention and not isinstance(block.attn.out_proj, bc.nn.FeedbackLayer)
