"""One type per neuron (types follow the traced graph: concatenation, flatten, channel shuffle, residual sums),
the per-unit audit, and the effective (BatchNorm-folded) audit, against types and counts written out by hand."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import biocircuits as bc
from biocircuits.feedback.convert import feedback_layers

E, I = 1.0, -1.0


def block(n_e: int, n_i: int) -> list[float]:
    return [E] * n_e + [I] * n_i


class Concat(nn.Module):
    """a (5 units) -> b (4 units); c reads cat(a, b), d reads cat(b, a); c's 6 units are channel-shuffled (2 groups),
    pooled to 2x2 and flattened into fc (24 features: feature f belongs to shuffled channel f // 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 5, 3, padding=1)
        self.b = nn.Conv2d(5, 4, 3, padding=1)
        self.c = nn.Conv2d(9, 6, 1)
        self.d = nn.Conv2d(9, 6, 1)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        x = F.relu(self.a(x))
        y = F.relu(self.b(x))
        u = F.relu(self.c(torch.cat([x, y], 1)))
        v = F.relu(self.d(torch.cat([y, x], dim=1)))
        u = torch.channel_shuffle(u, 2) + 0.0 * v.mean()
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(u, 2), 1))


def concat_types():
    """By hand, excitatory_fraction 0.5 (block: round(n/2) E first; Python rounds 2.5 to 2): a [E E I I I],
    b [E E I I], c [E E E I I I], shuffled (2 groups of 3: order 0 3 1 4 2 5) [E I E I E I]."""
    a, b, c = block(2, 3), block(2, 2), block(3, 3)
    shuffled = [c[i] for i in (0, 3, 1, 4, 2, 5)]
    return {"b": a, "c": a + b, "d": b + a, "fc": [s for s in shuffled for _ in range(4)]}


def violations(model):
    """Weights whose sign breaks Dale in any constrained layer, counted here from W and dale_sign."""
    return sum(int((m.weight * bc.dale.sign_mask(m) < 0).sum()) for m in model.modules() if hasattr(m, "dale_sign"))


def steps(model, opt, shape, n):
    for _ in range(n):
        opt.zero_grad()
        out = model(torch.rand(shape))
        (out * torch.randn(out.shape)).sum().backward()
        opt.step()


@pytest.mark.parametrize("rule", ["bp", "fa", "sign_symmetry"])
def test_concat_model_one_type_per_unit_and_dale_holds(rule):
    torch.manual_seed(0)
    model = bc.apply(Concat(), {"feedback": {"rule": rule}, "dale": {"excitatory_fraction": 0.5}})
    for name, want in concat_types().items():
        assert getattr(model, name).dale_sign.tolist() == want, name
    assert bc.audit(model, spectra=False).mixed_units == []
    for make in (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.Adam(p, lr=0.01)):
        steps(model, bc.bind(make(model.parameters()), model), (4, 3, 6, 6), 30)
        assert violations(model) == 0
    assert bool(torch.isfinite(model.fc.weight).all())


def test_per_layer_types_are_reported_as_mixed_units():
    model = bc.apply(Concat(), {"dale": {"excitatory_fraction": 0.5, "types": "per_layer"}})
    # per layer: c and d read 9 inputs, round(4.5) = 4 E; b reads 5, round(2.5) = 2 E. a_i is b[i] in b, c[i] in c,
    # d[4 + i] in d: a0..a3 get two types (a4 is I everywhere); b_i is c[5 + i] = I in c, d[i] = E in d
    c, d, b = block(4, 5), block(4, 5), block(2, 3)
    a_units = {i: {("c", c[i]), ("d", d[4 + i]), ("b", b[i])} for i in range(5)}
    b_units = {i: {("c", c[5 + i]), ("d", d[i])} for i in range(4)}
    want = sorted(
        [f"a[{i}]" for i, s in a_units.items() if len({t for _, t in s}) > 1]
        + [f"b[{i}]" for i, s in b_units.items() if len({t for _, t in s}) > 1]
    )
    got = sorted(m.unit for m in bc.audit(model, spectra=False).mixed_units)
    assert got == want == ["a[0]", "a[1]", "a[2]", "a[3]", "b[0]", "b[1]", "b[2]", "b[3]"]


def densenet_types(model):
    """Hand-written types of densenet121 (block assignment, 80% E): a dense layer's conv1 reads the block input
    (width w0: conv0's 64, then each transition's output) and every earlier dense layer's 32 new channels;
    conv2 reads conv1's 128; a transition and the classifier read the whole concatenation."""

    def sign(n):
        return bc.dale.assign_signs(n, 0.8, "block", 0).tolist()

    want, w0 = {}, 64
    blocks = [(1, 6), (2, 12), (3, 24), (4, 16)]
    for b, layers in blocks:
        cat = sign(w0)
        for k in range(1, layers + 1):
            want[f"features.denseblock{b}.denselayer{k}.conv1"] = list(cat)
            want[f"features.denseblock{b}.denselayer{k}.conv2"] = sign(128)
            cat += sign(32)
        if b < 4:
            want[f"features.transition{b}.conv"] = list(cat)
            w0 = len(cat) // 2
    want["classifier"] = list(cat)
    return want


def test_densenet121_one_type_per_unit_audit_and_per_layer_count():
    model = bc.apply(torchvision.models.densenet121(weights=None, num_classes=4), {"dale": {"init": "keep"}})
    want = densenet_types(model)
    got = {n: m.dale_sign.tolist() for n, m in model.named_modules() if hasattr(m, "dale_sign")}
    assert got == want
    report = bc.audit(model, spectra=False)
    assert report.mixed_units == [] and report.violations == 0 and violations(model) == 0
    old = bc.apply(
        torchvision.models.densenet121(weights=None, num_classes=4), {"dale": {"init": "keep", "types": "per_layer"}}
    )
    mixed = [
        m
        for m in bc.audit(old, spectra=False).mixed_units
        if m.unit.startswith("features.denseblock1.denselayer1.conv2[")
    ]
    # denselayer2.conv1 reads 96 channels: round(76.8) = 77 E, so denselayer1's channels 64 + 13..31 are I there;
    # denselayer3.conv1 reads 128: 102 E, all of them E: 19 units with two types
    assert len(mixed) == 19
    assert all("features.denseblock1.denselayer2.conv1" in m.inhibitory_in for m in mixed)


@pytest.mark.slow
def test_densenet_dale_holds_under_sgd_and_adam():
    torch.manual_seed(0)
    # the three rules in one network; densenet121's layout (4 dense blocks joined by transitions, every layer
    # reading the concatenation of all earlier ones) at a small width and depth, so the trace takes seconds
    feedback = {"rule": "bp", "overrides": {"features.denseblock2.*": "fa", "features.denseblock3.*": "sign_symmetry"}}
    small = torchvision.models.DenseNet(
        growth_rate=8, block_config=(3, 3, 3, 3), num_init_features=16, bn_size=2, num_classes=4
    )
    model = bc.apply(small, {"feedback": feedback, "dale": {"init": "keep", "input_shape": [3, 32, 32]}})
    rules = {layer.rule.name for _, layer in feedback_layers(model)}
    assert rules == {"bp", "fa", "sign_symmetry"}
    for make in (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.Adam(p, lr=0.01)):
        opt = bc.bind(make(model.parameters()), model)
        steps(model, opt, (2, 3, 32, 32), 2)
        assert violations(model) == 0
    assert bc.audit(model, spectra=False).mixed_units == []


def test_chain_keeps_the_per_layer_types_and_residual_sums_merge_units():
    mlp = bc.apply(
        nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 2)),
        {"dale": {"excitatory_fraction": 0.7}},
    )
    assert mlp[2].dale_sign.tolist() == block(7, 3) and mlp[4].dale_sign.tolist() == block(5, 2)
    resnet = bc.apply(torchvision.models.resnet18(num_classes=4), {"dale": {"init": "keep"}})
    # the residual stream of a stage is one set of neurons: both convs reading it see block(w) of its width
    for name in ("layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.0.downsample.0", "layer2.1.conv1"):
        width = resnet.get_submodule(name).in_channels
        assert resnet.get_submodule(name).dale_sign.tolist() == bc.dale.assign_signs(width, 0.8, "block", 0).tolist()


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(3, 4))
        self.gate = Gate()

    def forward(self, x):
        return self.gate(self.inner(x))


class Gate(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x  # data-dependent control flow: torch.fx cannot trace it


def test_untraceable_model_names_the_module_and_per_layer_works():
    with pytest.raises(bc.ConfigError, match=r"dale\.types.*tracing stops in gate"):
        bc.apply(Branchy(), {"dale": {"exempt": []}})
    model = bc.apply(Branchy(), {"dale": {"exempt": [], "types": "per_layer"}})
    assert model.inner[0].dale_sign.tolist() == block(2, 1)


class ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3)
        self.b = nn.Conv2d(6, 5, 3)
        self.bn = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        x = F.relu(self.bn(self.b(F.relu(self.a(x)))))
        return self.fc(x.mean((2, 3)))


def test_negative_batchnorm_gain_is_an_effective_violation():
    model = bc.apply(ConvBN(), {"dale": {"init": "keep"}})
    with torch.no_grad():
        model.b.weight[2, 0].zero_()  # 9 zero weights on unit 2: a zero flips to nothing
        model.bn.weight[2] = -0.5
    report = bc.audit(model, spectra=False)
    # unit 2 of b: every non-zero incoming weight now acts with the other sign: 6 * 9 - 9 = 45
    assert report.violations == 0 and report.effective_violations == 45
    assert [r.effective_violations for r in report.layers if r.name == "b"] == [45]
    assert any("b: 1 units have a negative gain in bn" in leak for leak in report.leaks)
    with torch.no_grad():  # what dale.norm_gamma will enforce: gamma >= 0
        model.bn.weight.clamp_(min=0)
    assert bc.audit(model, spectra=False).effective_violations == 0


class Sequence(nn.Module):
    """Tokens (batch, time, features): units lie along the last dim; attention output is an opaque producer merged
    into the residual stream; a mean over time keeps each feature's unit."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(5, 8)
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.ff = nn.Linear(8, 10)
        self.out = nn.Linear(10, 3)

    def forward(self, x):
        h = torch.relu(self.emb(x))
        a, _ = self.att(h, h, h)
        h = torch.relu(self.ff(h + a))
        return self.out(h.mean(1))


def test_sequence_model_units_along_features():
    model = bc.apply(Sequence(), {"dale": {"input_shape": [4, 5]}})
    # emb's 8 units (round(6.4) = 6 E) are the residual stream, merged with the attention output; out reads ff's
    # 10 units (8 E) through the mean over time
    assert model.ff.dale_sign.tolist() == block(6, 2) and model.out.dale_sign.tolist() == block(8, 2)
    assert bc.audit(model, spectra=False).mixed_units == []


class ManualShuffle(nn.Module):
    """ShuffleNet's channel shuffle written out: view (n, groups, c / groups, h, w), transpose, flatten back."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 1)
        self.b = nn.Conv2d(6, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        n, c, h, w = y.size()
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        return self.b(y)


def test_manual_channel_shuffle_moves_the_types():
    model = bc.apply(ManualShuffle(), {"dale": {"excitatory_fraction": 0.5}})
    a = block(3, 3)  # a's units 0..5: E E E I I I
    assert model.b.dale_sign.tolist() == [a[i] for i in (0, 3, 1, 4, 2, 5)]  # shuffled: E I E I E I
