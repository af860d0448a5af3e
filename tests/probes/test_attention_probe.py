"""bc.probe on attention (biocircuits/probes/attention.py): a FeedbackMultiheadAttention's packed in-projection is
probed whole and as q, k and v, its out_proj as a linear layer; probe values against a hand computation (explicit
matmuls, feedback alignment written out) on a tiny model (E = 4, 2 heads, 3 tokens)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc

from ..builders import TinyAttention

E, HEADS, T = 4, 2, 3


def Tiny() -> nn.Module:
    """embed (exempt: reads the input) -> ReLU -> self-attention -> mean over tokens -> head."""
    return TinyAttention(E, HEADS)


def angle(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return math.degrees(math.acos(float(a @ b / (a.norm() * b.norm()))))


def linear(x, w, b, feedback=None):
    """x W^T + b; with ``feedback`` B the error goes back as delta B (feedback alignment), W^T's value kept."""
    if feedback is None:
        return x @ w.T + b
    return (x @ w.T).detach() + x @ feedback.T - (x @ feedback.T).detach() + b


def error_at_in_projection(model, x, y, fa):
    """dL/d(t W_in^T + b_in), (N, T, 3E), by hand: attention written out, out_proj and head with B under ``fa``."""
    a = model.attn
    with torch.no_grad():
        t = model.embed(x).relu()
        qkv = t @ a.in_proj_weight.T + a.in_proj_bias
    qkv.requires_grad_()
    q, k, v = qkv.split(E, -1)
    d = E // HEADS
    heads = []
    for h in range(HEADS):
        c = slice(h * d, (h + 1) * d)
        heads.append(torch.softmax(q[..., c] @ k[..., c].transpose(1, 2) / math.sqrt(d), -1) @ v[..., c])
    out_b = a.out_proj.backward_weight() if fa else None
    head_b = model.head.backward_weight() if fa else None
    o = linear(torch.cat(heads, -1), a.out_proj.weight.detach(), a.out_proj.bias.detach(), out_b)
    logits = linear(o.mean(1), model.head.weight.detach(), model.head.bias.detach(), head_b)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), qkv)
    return grad


def test_probe_lists_and_measures_the_attention_projections():
    torch.manual_seed(0)
    model = bc.apply(Tiny(), "constraints/feedback_alignment.yaml")
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, T, 2, generator=g), torch.tensor([0, 2])
    stats = bc.probe(model, x, y)
    assert {"attn", "attn[q]", "attn[k]", "attn[v]", "attn.out_proj"} <= set(stats)
    w, b = model.attn.in_proj_weight.detach(), model.attn.backward_weight()
    # weight angle of the key projection: rows E..2E-1 of W_in and B_in
    assert math.isclose(stats["attn[k]"].weight_angle, angle(w[E : 2 * E], b[E : 2 * E]), abs_tol=1e-9)
    assert math.isclose(stats["attn"].weight_angle, angle(w, b), abs_tol=1e-9)
    # error angle at the value projection's output: the hand FA pass against the hand backprop pass
    rule, exact = error_at_in_projection(model, x, y, True), error_at_in_projection(model, x, y, False)
    expected = angle(rule[..., 2 * E :], exact[..., 2 * E :])
    assert 1.0 < expected < 179.0  # feedback alignment is not backprop here
    assert math.isclose(stats["attn[v]"].error_angle, expected, abs_tol=1e-4)
    assert math.isclose(stats["attn"].error_angle, angle(rule, exact), abs_tol=1e-4)
    # update angle of q: grad W_q = delta_q^T t, from the two errors
    t = model.embed(x).relu().detach()
    update = [(e[..., :E].reshape(-1, E).T @ t.reshape(-1, E)) for e in (rule, exact)]
    assert math.isclose(stats["attn[q]"].update_angle, angle(*update), abs_tol=1e-4)
    assert all(math.isfinite(stats[n].update_angle) for n in ("attn[k]", "attn[v]", "attn.out_proj"))
