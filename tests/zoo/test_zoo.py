"""The model zoo at small input sizes: torchvision's (and timm's, when installed) transformers and conv nets convert
whole: every transported matrix gets a feedback class, bp equals autograd, fa and sign symmetry take a finite step,
and the Dale presets train with 0 (effective) violations or refuse with a ConfigError."""

import copy
import functools

import pytest
import torch
import torchvision
from torch import nn

import biocircuits as bc
from biocircuits.feedback.transport import transport_report

tv = torchvision.models
SIZE = 32
TORCHVISION = {  # vit: vit_b_16's class and patch size at 2 layers of width 32 (the same modules, 1/300 the cost)
    "vit_2x32": lambda: tv.VisionTransformer(
        SIZE, 16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=5
    ),
    "swin_t": lambda: tv.swin_t(num_classes=5),
    "convnext_tiny": lambda: tv.convnext_tiny(num_classes=5),
    "mobilenet_v3_small": lambda: tv.mobilenet_v3_small(num_classes=5),
    "efficientnet_b0": lambda: tv.efficientnet_b0(num_classes=5),
    "densenet121": lambda: tv.densenet121(num_classes=5),
}
TIMM = {  # name -> create_model kwargs
    "vit_tiny_patch16_224": {"img_size": SIZE},
    "levit_128s": {"img_size": SIZE},
    "mobilenetv3_small_050": {},
}


def _timm(name):
    timm = pytest.importorskip("timm")
    return timm.create_model(name, num_classes=5, **TIMM[name])


ZOO = [pytest.param(TORCHVISION[n], id=n) for n in TORCHVISION] + [
    pytest.param(functools.partial(_timm, n), id=f"timm/{n}") for n in TIMM
]


@functools.cache
def _plain(build):
    torch.manual_seed(0)
    return build().eval()  # eval: dropout, stochastic depth and BN statistics out of the comparison


def _sample(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, SIZE, SIZE, generator=g), torch.tensor([1, 3])


def _grads(model, x, y):
    x = x.clone().requires_grad_()
    nn.functional.cross_entropy(model(x), y).backward()
    return [x.grad] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("build", ZOO)
def test_bp_equals_autograd(build):
    plain = copy.deepcopy(_plain(build))
    conv = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "bp"}})
    assert bc.feedback_layers(conv)
    x, y = _sample()
    for a, b in zip(_grads(plain, x, y), _grads(conv, x, y), strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", ["fa", "sign_symmetry"])
@pytest.mark.parametrize("build", ZOO)
def test_feedback_rules_convert_every_transported_matrix(build, rule):
    model = bc.apply(copy.deepcopy(_plain(build)).train(), {"feedback": {"rule": rule}})
    if rule == "fa":  # which layers convert does not depend on the rule: checked once
        report = transport_report(model, [])
        assert report is not None and report.backprop == []  # no matrix left to plain backprop
        transported = [n for n, r in report.roles.items() if r == "transported"]
        assert transported and report.read_directly == []
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.01), model)
    x, y = _sample(1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


# densenet121's Dale graph (concatenations) is covered by tests/dale/test_graph*.py; the sign-symmetry preset differs
# from dale.yaml only in the rule, so it runs on one model
DALE = [pytest.param(p.values[0], "dale.yaml", id=f"{p.id}-dale.yaml") for p in ZOO if p.id != "densenet121"]
DALE.append(pytest.param(TORCHVISION["mobilenet_v3_small"], "dale_sign_symmetry.yaml", id="mobilenet_v3_small-dss"))


@pytest.mark.parametrize(("build", "preset"), DALE)
def test_dale_presets_hold_or_refuse(build, preset):
    """Finite training with 0 violations and 0 effective violations, or a ConfigError (at apply or at the first
    forward: a population norm refuses a signed input there) that says what to change."""
    model = copy.deepcopy(_plain(build)).train()
    x, y = _sample(2)
    try:
        bc.apply(model, f"constraints/{preset}")
        opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.01), model)
        loss = nn.functional.cross_entropy(model(x), y)
    except bc.ConfigError as err:  # a clear refusal: names the key, what was given and what to do
        assert err.key and err.suggestion, str(err)
        return
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    audit = bc.audit(model, spectra=False)
    assert audit.violations == 0 and audit.effective_violations == 0
    state = bc.constraints_of(model)  # every constrained layer (attention's in-projections, Swin's routed qkv/proj
    assert [n for n in state.dale_layers if n not in state.dale_units.inputs] == []  # included) typed by the graph
