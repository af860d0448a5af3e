"""Transport, not presence (biocircuits/feedback/transport.py): what each parameter does to the error decides
whether it needs a feedback class; timm's Linear is converted through the shipped type mapping."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.feedback.convert import convertible_modules
from biocircuits.feedback.transport import transport_report


class Tokens(nn.Module):
    """A toy transformer stem: every way a parameter can meet the activity."""

    def __init__(self, d=4, n=3, mix=True):
        super().__init__()
        self.n = n
        self.embed = nn.Linear(2, d)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d))  # concatenated: additive
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, d))  # added: additive
        self.bias_table = nn.Parameter(torch.randn(5, 1))  # indexed, added to logits: additive
        self.register_buffer("index", torch.randint(0, 5, (n + 1, n + 1)))
        self.gamma = nn.Parameter(torch.rand(1, 1, d))  # LayerScale: gain
        self.norm = nn.LayerNorm(d)  # gain (weight), additive (bias)
        self.mix = nn.Parameter(torch.randn(d, d)) if mix else None  # multiplied: transported
        self.head = nn.Linear(d, 2)

    def forward(self, x):  # x (N, 2) -> n tokens (N, n, 2)
        t = self.embed(x.unsqueeze(1).expand(-1, self.n, -1) * torch.arange(1.0, self.n + 1).view(1, -1, 1))
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], 1) + self.pos_embed
        logits = t @ t.transpose(1, 2) + self.bias_table[self.index].squeeze(-1)
        t = t + self.gamma * torch.softmax(logits, -1) @ t
        t = self.norm(t)
        return self.head((t if self.mix is None else t @ self.mix)[:, 0])


def test_roles_follow_use_not_presence():
    model = Tokens()
    report = transport_report(model, convertible_modules(model))
    assert {
        k: report.roles[k] for k in ("cls_token", "pos_embed", "bias_table", "gamma", "norm.weight", "norm.bias", "mix")
    } == {
        "cls_token": "additive",
        "pos_embed": "additive",
        "bias_table": "additive",
        "gamma": "gain",
        "norm.weight": "gain",
        "norm.bias": "additive",
        "mix": "transported",
    }
    assert report.read_directly == []
    assert model.training and all(p.grad is None for p in model.parameters())  # nothing left behind


def test_only_transported_parameters_are_refused():
    with pytest.raises(bc.ConfigError, match=r"given '\(root\) \(Tokens\)'"):  # mix, held by the root
        bc.apply(Tokens(), {"feedback": {"rule": "fa"}})
    model = bc.apply(Tokens(mix=False), {"feedback": {"rule": "fa"}})  # tokens, biases, gains: no reason to refuse
    assert {n for n, _ in bc.feedback_layers(model)} == {"embed", "head"}
    text = bc.describe(model)
    assert "pos_embed" in text and "adds to the activity" in text and "gain (the error passes as in backprop)" in text


def test_timm_linear_converts_through_the_shipped_mapping():
    timm = pytest.importorskip("timm")
    model = nn.Sequential(timm.layers.Linear(4, 3)).double()
    bc.apply(model, {"feedback": {"rule": "fa"}})
    assert isinstance(model[0], timm.layers.Linear) and model[0].rule.name == "fa"
    x = torch.randn(5, 4, dtype=torch.double, requires_grad=True)
    c = torch.randn(5, 3, dtype=torch.double)
    (model(x) * c).sum().backward()
    torch.testing.assert_close(x.grad, c @ model[0].feedback_weight)
    assert not torch.allclose(x.grad, c @ model[0].weight.detach())


def test_frozen_and_untraceable_models_keep_the_static_check():
    class Frozen(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 4), requires_grad=False)  # frozen, still transported
            self.out = nn.Linear(3, 2)

        def forward(self, x):
            return self.out(F.linear(x, self.w))

    with pytest.raises(bc.ConfigError, match=r"\(root\) \(Frozen\)"):
        bc.apply(Frozen(), {"feedback": {"rule": "sign_symmetry"}})
    frozen = Frozen()
    assert transport_report(frozen, []) is None  # the guessed sample (1, 3) does not run: the static check is kept
    assert transport_report(frozen, [], input_shape=[4]).roles["w"] == "transported" and not frozen.w.requires_grad
