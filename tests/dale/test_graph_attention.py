"""Dale types through attention (biocircuits/dale/graph/attention.py): the token mixing softmax(q k^T) v carries
the value units to the output projection; nn.MultiheadAttention's values are a producer its out_proj reads."""

import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.dale.graph import unit_graph

D, HEADS, T = 8, 2, 3


class Block(nn.Module):
    """A timm-style attention block: Linear q/k/v, F.scaled_dot_product_attention, Linear output projection."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, D)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.head = nn.Linear(D, 2)

    def forward(self, x):  # x (N, 4) -> T tokens
        t = self.embed(x).unsqueeze(1).expand(-1, T, -1)
        b = t.shape[0]
        q, k, v = self.qkv(t).reshape(b, T, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, T, D)
        return self.head(self.proj(o).mean(1))


def test_value_units_reach_the_output_projection():
    graph = unit_graph(Block())
    qkv_out = graph.outputs["qkv"]
    # by hand: feature j of the attention output is feature j of v (qkv's outputs 2D..3D-1), mixed over tokens only
    assert torch.equal(graph.root[graph.inputs["proj"]], graph.root[qkv_out[2 * D :]])
    model = bc.apply(Block(), "constraints/dale.yaml")
    signs = graph.signs(0.8, "block", 0)
    assert torch.equal(model.proj.dale_sign, signs[qkv_out[2 * D :]])


def test_multihead_attention_values_are_its_own_producer():
    class WithMHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(4, D)
            self.attn = nn.MultiheadAttention(D, HEADS, batch_first=True)
            self.head = nn.Linear(D, 2)

        def forward(self, x):
            t = self.embed(x).unsqueeze(1)
            return self.head(self.attn(t, t, t, need_weights=False)[0][:, 0])

    model = bc.apply(WithMHA(), "constraints/dale.yaml")
    graph = bc.constraints_of(model).dale_units
    names = [p.name for p in graph.producers]
    assert names == ["<input>", "embed", "attn (queries, keys)", "attn (values)", "attn.out_proj", "head"]
    values = next(p for p in graph.producers if p.name == "attn (values)")
    assert graph.inputs["attn.out_proj"].tolist() == list(range(values.offset, values.offset + D))
    assert torch.equal(graph.inputs["head"], graph.outputs["attn.out_proj"])
    signs = bc.constraints_of(model).unit_signs
    assert torch.equal(model.attn.out_proj.dale_sign, signs[graph.inputs["attn.out_proj"]])
    # the packed in-projection reads the embedding's units (its q, k and v columns alike)
    assert torch.equal(graph.inputs["attn"], graph.outputs["embed"])
    assert torch.equal(model.attn.dale_sign, signs[graph.outputs["embed"]])
    assert bc.audit(model).violations == 0
