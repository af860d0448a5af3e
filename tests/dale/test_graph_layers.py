"""What a weight layer reads and produces in the unit graph (biocircuits/dale/graph/layers.py), for convs with a
spatial extent and for a layer called twice, against unit ids written out by hand."""

import torch
from torch import nn

from biocircuits.dale.graph import unit_graph


class Chain(nn.Module):
    """input 3 channels (units 0 1 2) -> a: 4 channels (units 3 4 5 6) -> b: 2 channels (units 7 8), 5x5 maps."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_a_conv_produces_one_unit_per_output_channel():
    graph = unit_graph(Chain(), [3, 5, 5])
    assert graph.outputs["a"].tolist() == [3, 4, 5, 6]
    assert graph.outputs["b"].tolist() == [7, 8]
    assert graph.inputs["b"].tolist() == [3, 4, 5, 6]


class Twice(nn.Module):
    """One conv applied twice (shared weights): first call reads units 0 1 2 and produces 3 4 5, the second reads
    3 4 5 and produces 6 7 8; one layer reads one set of units and produces one, so by hand the classes are
    {0 3 6} {1 4 7} {2 5 8}."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(3, 3, 1)

    def forward(self, x):
        return self.a(self.a(x))


def test_a_layer_called_twice_merges_every_channel_of_its_calls():
    graph = unit_graph(Twice(), [3, 6])
    assert graph.root.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert graph.outputs["a"].tolist() == [3, 4, 5]
