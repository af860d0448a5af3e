"""Dale's law on nn.MultiheadAttention's packed in-projection (biocircuits/dale/graph/attention.py, core/layers.py
dale_layers): W_q, W_k and W_v's column j carry the sign of residual-stream unit j, every enforcer keeps it, the audit
counts it, DANN refuses it; each against a hand computation on a tiny model (E = 4 features, 2 heads, 3 tokens)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.dale.population_norm import divide_by_population_mean

from ..builders import TinyAttention

E, HEADS, T = 4, 2, 3
SIGNS = torch.tensor([1.0, 1.0, 1.0, -1.0])  # block assignment of 4 units at fraction 0.75: E E E I


def Tiny() -> nn.Module:
    """embed (exempt: reads the input) -> ReLU -> self-attention -> mean over tokens -> head."""
    return TinyAttention(E, HEADS)


def spec(**dale):
    base = {"excitatory_fraction": 0.75, "assignment": "block", "init": "keep", "input_shape": [T, 2]}
    return {"feedback": {"rule": "bp"}, "dale": {**base, **dale}}


def tiny(seed=0):
    torch.manual_seed(seed)
    return Tiny()


def sample():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, T, 2, generator=g), torch.tensor([0, 2])


def attention_by_hand(t, w_in, b_in, w_out, b_out, before_out=lambda o: o):
    """softmax(q_h k_h^T / sqrt(d)) v_h per head, concatenated, ``before_out`` of it, then the output projection;
    t (N, T, E)."""
    q, k, v = (t @ w.T + b for w, b in zip(w_in.split(E), b_in.split(E), strict=True))
    d = E // HEADS
    heads = []
    for h in range(HEADS):
        cols = slice(h * d, (h + 1) * d)
        a = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d), dim=-1)
        heads.append(a @ v[..., cols])
    return before_out(torch.cat(heads, -1)) @ w_out.T + b_out


def test_in_projection_columns_take_the_residual_units_signs():
    plain = tiny()
    model = bc.apply(copy.deepcopy(plain), spec(exempt=["<input>"]))
    assert torch.equal(model.attn.dale_sign, SIGNS)  # the embedding's units, in the unit graph
    # init keep: W_in = s |W_in| column by column, for the q, k and v rows alike
    expected = SIGNS.view(1, -1) * plain.attn.in_proj_weight.detach().abs()
    torch.testing.assert_close(model.attn.in_proj_weight.detach(), expected, rtol=0, atol=0)
    assert model.attn.in_proj_weight.shape == (3 * E, E)
    assert "attn" in bc.constraints_of(model).dale_layers


def _step(model, lr):
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=lr), model)
    x, y = sample()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return x


@pytest.mark.parametrize("enforce", ["project", "exp_gradient", "abs", "softplus"])
def test_every_enforcer_keeps_the_in_projection_signs(enforce):
    model = bc.apply(tiny(), spec(enforce=enforce, exempt=["<input>"]))
    latent = bc.core.trainable_weight(model.attn)  # in_proj_weight, or its latent V under abs / softplus
    before = latent.detach().clone()
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=1.0), model)
    x, y = sample()
    F.cross_entropy(model(x), y).backward()
    grad = latent.grad.clone()
    s = SIGNS.view(1, -1)
    toward_zero = grad * before > 0  # SGD moves these towards 0: twice the smallest ratio flips one of them
    lr = 2 * float((before.abs() / grad.abs())[toward_zero].min())
    opt.param_groups[0]["lr"] = lr
    opt.step()
    moved = before - lr * grad  # plain SGD
    expected = {
        "project": lambda: s * (s * moved).clamp(min=0),
        "exp_gradient": lambda: before * torch.exp(s * (moved - before)),
        "abs": lambda: s * moved.abs(),
        "softplus": lambda: s * F.softplus(moved),
    }[enforce]()
    assert bool(((s * moved) < 0).any()) or enforce in ("abs", "softplus")  # some weights tried to flip
    w_in = model.attn.in_proj_weight.detach()
    torch.testing.assert_close(w_in, expected, rtol=1e-6, atol=1e-7)
    assert bool((w_in * s >= 0).all())
    # the converted attention computes with that W_in (for abs / softplus: through the parametrisation)
    model.eval()
    t = model.embed(x).relu()
    a = model.attn
    by_hand = attention_by_hand(t, w_in, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias)
    torch.testing.assert_close(a(t, t, t, need_weights=False)[0], by_hand, rtol=1e-5, atol=1e-6)
    assert bc.audit(model, spectra=False).violations == 0


def test_audit_counts_in_projection_violations():
    model = bc.apply(tiny(), spec(exempt=["<input>"]))
    with torch.no_grad():
        w = model.attn.in_proj_weight
        w[0, 3] = 0.5  # column 3 is I: a positive weight breaks the law (a q row)
        w[E + 1, 0] = -0.5  # a k row, E column
        w[2 * E + 2, 1] = -0.25  # a v row, E column
    report = bc.audit(model, spectra=False)
    row = next(r for r in report.layers if r.name == "attn")
    assert row.constrained and (row.excitatory, row.inhibitory) == (3, 1)
    assert row.violations == 3 and row.effective_violations == 3
    assert report.violations == 3 and report.effective_violations == 3
    assert any("attn: attention logits" in leak for leak in report.leaks)


def test_audit_reports_an_unconverted_attention():
    model = bc.apply(tiny(), {**spec(exempt=["<input>"]), "feedback": {"rule": "bp", "exclude": ["attn"]}})
    report = bc.audit(model, spectra=False)
    assert "attn" not in [r.name for r in report.layers]
    assert any(
        leak.startswith("attn: packed in-projection (in_proj_weight) is not constrained") for leak in report.leaks
    )


class Cross(nn.Module):
    """Cross-attention: queries from one stream, keys and values from another (both E wide)."""

    def __init__(self):
        super().__init__()
        self.query = nn.Linear(2, E)
        self.memory = nn.Linear(2, E)
        self.attn = nn.MultiheadAttention(E, HEADS, batch_first=True)
        self.head = nn.Linear(E, 3)

    def forward(self, x):
        q, m = self.query(x).relu(), self.memory(x).relu()
        return self.head(self.attn(q, m, m, need_weights=False)[0].mean(1))


def test_cross_attention_reads_query_and_memory_unit_j_as_one_type():
    torch.manual_seed(0)
    model = bc.apply(Cross(), spec(exempt=["query", "memory"]))
    units = bc.constraints_of(model).dale_units
    # column j of W_in multiplies unit j of the query stream (q rows) and of the memory (k, v rows): one type
    roots = units.root
    assert torch.equal(roots[units.outputs["query"]], roots[units.outputs["memory"]])
    assert torch.equal(model.attn.dale_sign, SIGNS)
    assert bc.audit(model, spectra=False).mixed_units == []


def test_per_layer_types_give_the_in_projection_its_own_signs():
    model = bc.apply(tiny(), spec(types="per_layer", exempt=["<input>"]))
    assert torch.equal(model.attn.dale_sign, SIGNS)


def test_dann_refuses_attention_and_leaves_the_model_as_it_was():
    model = tiny()
    saved = copy.deepcopy(model.state_dict())
    with pytest.raises(bc.ConfigError) as err:
        bc.apply(model, {"feedback": {"rule": "bp"}, "dale": {"architecture": "dann", "input_shape": [T, 2]}})
    assert err.value.key == "dale.architecture" and "attn" in str(err.value) and "exempt" in str(err.value)
    assert type(model.attn) is nn.MultiheadAttention and not hasattr(model, "biocircuits")
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])


def test_population_norm_divides_query_key_and_value_per_feature():
    model = bc.apply(tiny(), spec(population_norm="divisive", exempt=["<input>"])).eval()
    x, _ = sample()
    t = model.embed(x).relu()
    exc = SIGNS > 0

    def divide(u):  # by hand: each token's E features divided by their mean |u| (+ eps), the I feature by its own
        m_e = u[..., exc].abs().mean(-1, keepdim=True)
        m_i = u[..., ~exc].abs().mean(-1, keepdim=True)
        return torch.where(exc, u / (m_e + 1e-3), u / (m_i + 1e-3))

    torch.testing.assert_close(divide(t), divide_by_population_mean(t, SIGNS, 1e-3, -1))
    a = model.attn  # q, k and v read the divided stream; out_proj (values: E E E I) divides its input too
    assert torch.equal(a.out_proj.dale_sign, SIGNS)
    w_in, b_in, w_out, b_out = a.in_proj_weight, a.in_proj_bias, a.out_proj.weight, a.out_proj.bias
    by_hand = attention_by_hand(divide(t), w_in, b_in, w_out, b_out, before_out=divide)
    torch.testing.assert_close(a(t, t, t, need_weights=False)[0], by_hand, rtol=1e-5, atol=1e-6)


def test_vision_transformer_types_each_residual_feature_apart():
    """torchvision's ViT: the class token and the patch tokens both get the positional embedding's feature j added, so
    feature j of the stream is one unit (merged), and the D features stay D units with their own types."""
    import torchvision

    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(16, 8, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16)
    model = bc.apply(
        vit, {"feedback": {"rule": "bp"}, "dale": {"excitatory_fraction": 0.75, "input_shape": [3, 16, 16]}}
    )
    state = bc.constraints_of(model)
    name = "encoder.layers.encoder_layer_0.self_attention"
    units = state.dale_units
    roots = units.root[units.inputs[name]]
    assert roots.unique().numel() == 8  # one unit per feature, not one for the whole stream
    assert torch.equal(roots, units.root[units.outputs["conv_proj"]])  # the patch embedding's units
    attn = model.get_submodule(name)
    assert torch.equal(attn.dale_sign, state.unit_signs[units.inputs[name]])
    assert int((attn.dale_sign > 0).sum()) == 6
