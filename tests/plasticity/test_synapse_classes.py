"""Synapse-class plasticity (E->E, E->I, I->E, I->I: presynaptic type from dale_sign, postsynaptic type = the output
unit's own type), checked weight by weight against classes written out by hand; errors for rules that match no
synapse or need Dale; exponentiated-gradient weight decay against the formula."""

import pytest
import torch
from torch import nn

import biocircuits as bc

from ..builders import build_mlp, random_gradient_step

E, I = 1.0, -1.0
# excitatory_fraction 0.6, block: layer 0 outputs 10 units (6 E), layer 2 outputs 6 (round(3.6) = 4 E), layer 4
# outputs 2 (round(1.2) = 1 E). Layer 2 reads layer 0's units, layer 4 reads layer 2's.
PRE = {"2": [E] * 6 + [I] * 4, "4": [E] * 4 + [I] * 2}
POST = {"2": [E] * 4 + [I] * 2, "4": [E, I]}
CLASSES = {"E->E": (E, E), "E->I": (E, I), "I->E": (I, E), "I->I": (I, I)}


def build(plasticity, dale=True):
    m = build_mlp(4, 10, 6, 2, seed=0)
    spec = {"plasticity": plasticity}
    if dale:
        spec["dale"] = {"excitatory_fraction": 0.6, "init": "keep"}
    return bc.apply(m, spec)


def one_step(model):
    random_gradient_step(model, bc.bind(torch.optim.SGD(model.parameters(), lr=0.05), model), seed=1)


def in_class(layer: str, synapse: str) -> torch.Tensor:
    """Bool (out, in): True where post[o] and pre[j] are the class's types (by hand, from the lists above)."""
    pre, post = CLASSES[synapse]
    return torch.tensor([[p == post and q == pre for q in PRE[layer]] for p in POST[layer]])


@pytest.mark.parametrize("synapse", sorted(CLASSES))
def test_rules_touch_exactly_their_synapse_class(synapse):
    match = {"synapse": synapse} if synapse != "I->I" else {"population": "I", "post": "I"}  # both spellings
    model = build({"rules": [{"match": match, "frozen": True}]})
    ref = build({"rules": []})
    ref.load_state_dict(model.state_dict())
    before = {n: model.get_submodule(n).weight.detach().clone() for n in PRE}
    for n in PRE:
        assert model.get_submodule(n).dale_sign.tolist() == PRE[n]
    one_step(model)
    one_step(ref)
    for n in PRE:
        got, want = model.get_submodule(n).weight.detach(), ref.get_submodule(n).weight.detach()
        mask = in_class(n, synapse)
        assert torch.equal(got[mask], before[n][mask])  # frozen: bit-identical
        # every other synapse as without the rule (to rounding: the rule computes W_before + 1 * (W - W_before))
        assert torch.allclose(got[~mask], want[~mask], rtol=1e-6, atol=1e-8)
        assert bool((want[mask] != before[n][mask]).any())  # (the class would have moved)


def test_lr_scale_on_one_class_of_one_layer():
    model = build({"rules": [{"match": {"layers": "2", "synapse": "E->I"}, "lr_scale": 0.25}]})
    ref = build({"rules": []})
    ref.load_state_dict(model.state_dict())
    w0 = model[2].weight.detach().clone()
    one_step(model)
    one_step(ref)
    mask = in_class("2", "E->I")
    d, d_ref = model[2].weight.detach() - w0, ref[2].weight.detach() - w0
    legal = ref[2].weight.detach() * model[2].dale_sign > 0  # no projection on these in the reference
    assert torch.allclose(d[mask & legal], 0.25 * d_ref[mask & legal], atol=1e-7)
    assert torch.allclose(d[~mask], d_ref[~mask], rtol=1e-6, atol=1e-8)
    assert torch.equal(model[4].weight, ref[4].weight)


def test_rules_that_match_nothing_or_need_dale_are_errors():
    with pytest.raises(bc.ConfigError, match=r"rules\[0\]\.match: a rule matching cell types needs Dale"):
        build({"rules": [{"match": {"synapse": "E->I"}, "lr_scale": 0.5}]}, dale=False)
    with pytest.raises(bc.ConfigError, match=r"rules\[0\]\.match\.layers: pattern matches no weight layer.*2"):
        build({"rules": [{"match": {"layers": "22"}, "lr_scale": 0.5}]})
    with pytest.raises(bc.ConfigError, match=r"rules\[1\]\.match: rule matches no synapse.*closest Dale layers: 2"):
        build(
            {
                "rules": [
                    {"match": {"layers": "2"}, "lr_scale": 0.5},  # layer 0 is exempt (no types)
                    {"match": {"layers": "0", "population": "I"}, "lr_scale": 0.5},
                ]
            }
        )
    with pytest.raises(bc.ConfigError, match="synapse: E->I contradicts population"):
        bc.Constraints.from_dict({"plasticity": {"rules": [{"match": {"synapse": "E->I", "population": "I"}}]}})
    with pytest.raises(bc.ConfigError, match="unknown synapse class"):
        bc.Constraints.from_dict({"plasticity": {"rules": [{"match": {"synapse": "E-I"}}]}})


def test_exp_gradient_weight_decay_is_exponentiated():
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4)),
        {"dale": {"enforce": "exp_gradient", "init": "keep"}},
    )
    lr, wd = 0.1, 0.5
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd), model)
    w0 = model[2].weight.detach().clone()
    (model(torch.rand(5, 3)) * torch.randn(5, 4)).sum().backward()
    g = model[2].weight.grad.clone()
    opt.step()
    s = model[2].dale_sign.view(1, -1)
    want = w0 * torch.exp(-lr * s * g) * torch.exp(torch.tensor(-lr * wd))  # |W| <- |W| exp(-lr s g) exp(-lr wd)
    assert torch.allclose(model[2].weight.detach(), want, rtol=1e-5, atol=1e-7)


def test_dann_synapse_classes_are_its_three_tensors():
    def dann(rules):
        return bc.apply(
            build_mlp(4, 10, 20, 2, seed=0), {"dale": {"architecture": "dann"}, "plasticity": {"rules": rules}}
        )

    def tensors(model):
        p = model[2].parametrizations.weight
        return [t.detach().clone() for t in (p.original, p[0].weight_ie, p[0].weight_ei)]  # E->E, E->I, I->E

    model = dann(
        [
            {"match": {"synapse": "E->I"}, "frozen": True},
            {"match": {"layers": "2", "synapse": "I->E"}, "lr_scale": 0.5},
            {"match": {"layers": "4", "synapse": "E->E"}, "frozen": True},
            {"match": {"layers": "4"}, "lr_scale": 1.0, "direction": "both"},
        ]
    )  # every class of layer 4
    ref = dann([])
    ref.load_state_dict(model.state_dict())
    start, last = tensors(model), model[4].parametrizations.weight.original.detach().clone()
    one_step(model)
    one_step(ref)
    (ee, ie, ei), (ee_r, ie_r, ei_r) = tensors(model), tensors(ref)
    assert torch.equal(ie, start[1]) and not torch.equal(ie_r, start[1])  # E->I frozen
    assert torch.equal(model[4].parametrizations.weight.original, last)  # E->E of layer 4 frozen
    assert torch.allclose(ee, ee_r, rtol=1e-6, atol=1e-8)  # E->E as without rules
    legal = ei_r > 0
    assert torch.allclose((ei - start[2])[legal], 0.5 * (ei_r - start[2])[legal], atol=1e-7)  # I->E halved
    with pytest.raises(bc.ConfigError, match="rule matches no synapse"):  # DANN has no I->I synapses
        dann([{"match": {"synapse": "I->I"}, "frozen": True}])
