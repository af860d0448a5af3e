"""The per-op dispatch table of the unit graph (biocircuits/dale/graph/ops.py): an op joins with one entry and its
rule is used; the units a layer reads are checked against ids written out by hand."""

import operator

import torch
from torch import nn

from biocircuits.dale.graph import UNIT_RULES, merging, passthrough, structural, unit_graph
from biocircuits.dale.graph.ops import rule_for
from biocircuits.dale.graph.tracing import trace


class Rolled(nn.Module):
    """a: 3 -> 4 channels; its channels are rolled by one (channel c takes channel c - 1's activation) before b
    reads them. Unit ids by hand: the input is units 0 1 2, a produces 3 4 5 6, rolled: 6 3 4 5."""

    def __init__(self, method: bool) -> None:
        super().__init__()
        self.method = method
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.a(x)
        return self.b(y.roll(1, 1) if self.method else torch.roll(y, 1, 1))


def test_an_op_without_an_entry_passes_its_ids_through():
    assert torch.roll not in UNIT_RULES and "roll" not in UNIT_RULES
    assert unit_graph(Rolled(method=False), [3, 4, 4]).inputs["b"].tolist() == [3, 4, 5, 6]


def test_one_entry_registers_a_function_op_and_its_rule_is_used(monkeypatch):
    seen = []

    def roll_rule(prop, n, real):
        seen.append(n.target)
        return structural(prop, n, real)

    monkeypatch.setitem(UNIT_RULES, torch.roll, roll_rule)
    graph = unit_graph(Rolled(method=False), [3, 4, 4])
    assert seen == [torch.roll]
    assert graph.inputs["b"].tolist() == [6, 3, 4, 5]


def test_one_entry_registers_a_tensor_method(monkeypatch):
    monkeypatch.setitem(UNIT_RULES, "roll", structural)
    graph = unit_graph(Rolled(method=True), [3, 4, 4])
    assert graph.inputs["b"].tolist() == [6, 3, 4, 5]
    # b's signs follow a's units through the roll: a (block, fraction 0.5) is E E I I, rolled I E E I
    signs = graph.signs(0.5, "block", 0)
    assert signs[graph.inputs["b"]].tolist() == [-1.0, 1.0, 1.0, -1.0]


class Gain(nn.Module):
    def forward(self, x):
        return x


class Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.g = nn.Linear(3, 2), nn.Identity()

    def forward(self, x):
        return self.g(x + self.a(torch.zeros_like(x)[..., :2]).sum(-1, keepdim=True))


def test_lookup_by_kind_of_node():
    gm = trace(Wrapped())
    nodes = {n.name: n for n in gm.graph.nodes}
    assert rule_for(nodes["add"]) is UNIT_RULES[operator.add] is merging
    assert rule_for(nodes["getitem"]) is structural
    assert rule_for(nodes["sum_1"]) is passthrough  # a method with no entry
    assert rule_for(nodes["g"], nn.Identity()) is structural  # a module class, found along the MRO
    assert rule_for(nodes["g"], Gain()) is passthrough
