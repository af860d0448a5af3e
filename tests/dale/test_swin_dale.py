"""Swin's routed owners in the Dale graph (biocircuits/dale/graph/attention.py, ``window_attention``): the window
attention reads its qkv and proj weights without calling them, and the graph still types them, on a tiny torchvision
SwinTransformer (embed 8, two stages of one block, windows of 2 x 2)."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

import biocircuits as bc
from biocircuits.dale.population_norm import divide_by_population_mean

C = 8
SPEC = {"feedback": {"rule": "bp"}, "dale": {"excitatory_fraction": 0.75, "input_shape": [3, 8, 8]}}


def swin(v2=False):
    torch.manual_seed(0)
    extra = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2} if v2 else {}
    return SwinTransformer([2, 2], C, [1, 1], [2, 2], [2, 2], num_classes=3, **extra)


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_window_attention_projections_read_the_stream_and_the_values(v2):
    model = bc.apply(swin(v2), SPEC)
    state = bc.constraints_of(model)
    units, signs = state.dale_units, state.unit_signs
    root = units.root
    qkv, proj = "features.1.0.attn.qkv", "features.1.0.attn.proj"
    # by hand: qkv reads the patch embedding's C units (through the permute and LayerNorm), proj reads the values
    assert torch.equal(root[units.inputs[qkv]], root[units.outputs["features.0.0"]])
    values = next(p for p in units.producers if p.name == f"{qkv} (values)")
    assert units.inputs[proj].tolist() == list(range(values.offset, values.offset + C))
    assert units.outputs[qkv].numel() == 3 * C
    block = torch.tensor([1.0] * 6 + [-1.0] * 2)  # 8 units at fraction 0.75, E first
    layers = dict(model.named_modules())
    assert torch.equal(layers[qkv].dale_sign, signs[units.inputs[qkv]])
    assert torch.equal(layers[proj].dale_sign, block)
    # the 2 x 2 patch merging concatenates four copies of the stream's units
    stream = root[units.inputs["features.1.0.mlp.0"]]
    assert torch.equal(root[units.inputs["features.2.reduction"]], stream.repeat(4))
    assert state.dale_layers.count(qkv) == 1 and proj in state.dale_layers


def test_swin_trains_under_dale_with_no_violations_and_the_pool_reaches_routed_layers():
    model = swin()
    qkv = model.features[1][0].attn.qkv
    raw, divided = [], []
    qkv.register_forward_pre_hook(lambda m, a: raw.append(a[0]))  # runs before the population norm's division
    bc.apply(model, {**SPEC, "dale": {**SPEC["dale"], "population_norm": "divisive"}})
    qkv.register_forward_hook(lambda m, a, o: divided.append(a[0]))
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.05), model)
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    # the routed qkv (never called as a module) gets its input divided by the population means, as a call would
    assert len(raw) == 1 and len(divided) == 1
    torch.testing.assert_close(divided[0], divide_by_population_mean(raw[0], qkv.dale_sign, 1e-3, -1))
    report = bc.audit(model, spectra=False)
    assert torch.isfinite(loss) and report.violations == 0 and report.effective_violations == 0
    assert {"features.1.0.attn.qkv", "features.1.0.attn.proj"} <= {r.name for r in report.layers if r.constrained}
