"""Attention with feedback (biocircuits/feedback/attention.py, owners.py): bp equals nn.MultiheadAttention exactly,
fa and sign symmetry equal hand formulas (explicit matmuls; the attention product differentiated as backprop)."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.feedback import owners

E, H, L, N = 6, 2, 4, 3


def _same(want, got):
    """Equal up to float64 rounding (the same ops; batch-first inputs may be laid out differently in memory)."""
    for a, b in zip(want, got, strict=True):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-13)


def _run(module, x, kv=None, **kw):
    x = x.clone().requires_grad_()
    kv_in = None if kv is None else kv.clone().requires_grad_()
    key = x if kv_in is None else kv_in
    y, w = module(x, key, key, **kw)
    loss = y.sin().sum() + (0 if w is None else (w * w).sum())
    loss.backward()
    grads = [x.grad] + ([] if kv_in is None else [kv_in.grad]) + [p.grad for p in module.parameters()]
    return y, w, grads


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("cross", [False, True])
def test_bp_equals_multihead_attention_exactly(batch_first, need_weights, cross):
    torch.manual_seed(0)
    plain = nn.MultiheadAttention(E, H, batch_first=batch_first).double()
    conv = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "bp"}})
    assert isinstance(conv, bc.nn.FeedbackLayer) and isinstance(conv.out_proj, bc.nn.FeedbackLinear)
    x = torch.randn(L, N, E, dtype=torch.double)
    kv = torch.randn(L + 1, N, E, dtype=torch.double) if cross else None
    if batch_first:
        x, kv = x.transpose(0, 1), None if kv is None else kv.transpose(0, 1)
    pad = torch.zeros(N, L + int(cross), dtype=torch.double)
    pad[0, -1] = -math.inf
    mask = torch.zeros(L, L + int(cross), dtype=torch.double)
    mask[1, 0] = -1.5
    kw = {"need_weights": need_weights, "key_padding_mask": pad, "attn_mask": mask}
    ya, wa, ga = _run(plain, x, kv, **kw)
    yb, wb, gb = _run(conv, x, kv, **kw)
    assert (wa is None) == (wb is None)
    _same([ya, wa, *ga], [yb, wb, *gb])


def test_unbatched_and_causal_equal_autograd():
    torch.manual_seed(1)
    plain = nn.MultiheadAttention(E, H).double()
    conv = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "bp"}})
    x = torch.randn(L, E, dtype=torch.double)
    causal = nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.double)
    for kw in ({}, {"attn_mask": causal, "is_causal": True, "need_weights": False}):
        ya, _, ga = _run(plain, x, **kw)
        yb, _, gb = _run(conv, x, **kw)
        _same([ya, *ga], [yb, *gb])


def _hand_attention(x, w_in, b_in, b_out, w_out, c, b_in_fb, b_out_fb):
    """(grad_x, grad_W_in, grad_W_out) by hand: projections with explicit matmuls and their feedback matrices;
    the attention product (activity x activity) differentiated exactly."""
    qkv = (x @ w_in.T + b_in).detach().requires_grad_()  # (L, N, 3E)
    q, k, v = qkv.split(E, dim=-1)
    d = E // H
    heads = [slice(h * d, (h + 1) * d) for h in range(H)]
    o = torch.cat(
        [
            torch.softmax(torch.einsum("lnd,snd->nls", q[..., s], k[..., s]) / math.sqrt(d), -1)
            .matmul(v[..., s].transpose(0, 1))
            .transpose(0, 1)
            for s in heads
        ],
        -1,
    )  # (L, N, E)
    delta_y = c  # loss = sum(y * c)
    grad_w_out = delta_y.reshape(-1, E).T @ o.detach().reshape(-1, E)
    delta_o = delta_y @ b_out_fb  # the error through B_out, not W_out
    (delta_qkv,) = torch.autograd.grad(o, qkv, delta_o)  # through the attention product: no weight
    grad_w_in = delta_qkv.reshape(-1, 3 * E).T @ x.reshape(-1, E)
    grad_x = delta_qkv @ b_in_fb  # the error through B_in, not W_in
    return grad_x, grad_w_in, grad_w_out


@pytest.mark.parametrize("rule", ["fa", "sign_symmetry"])
def test_feedback_rules_equal_hand_formulas(rule):
    torch.manual_seed(2)
    options = {"magnitude": "unit"} if rule == "sign_symmetry" else {}
    attn = bc.apply(nn.MultiheadAttention(E, H).double(), {"feedback": {"rule": rule, "options": options}})
    x = torch.randn(L, N, E, dtype=torch.double, requires_grad=True)
    c = torch.randn(L, N, E, dtype=torch.double)
    (attn(x, x, x, need_weights=False)[0] * c).sum().backward()
    w_in, w_out = attn.in_proj_weight.detach(), attn.out_proj.weight.detach()
    if rule == "fa":
        fb_in, fb_out = attn.feedback_weight, attn.out_proj.feedback_weight
        assert fb_in.shape == (3 * E, E) and fb_out.shape == (E, E)
    else:
        fb_in, fb_out = torch.sign(w_in), torch.sign(w_out)
    want = _hand_attention(x.detach(), w_in, attn.in_proj_bias.detach(), None, w_out, c, fb_in, fb_out)
    assert not torch.allclose(
        want[0],
        torch.autograd.grad(  # the hand reference differs from backprop's
            (nn.MultiheadAttention.forward(attn, x, x, x, need_weights=False)[0] * c).sum(), x
        )[0],
    )
    torch.testing.assert_close(x.grad, want[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(attn.in_proj_weight.grad, want[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(attn.out_proj.weight.grad, want[2], rtol=1e-10, atol=1e-12)


def test_unsupported_attention_is_refused_and_remove_restores():
    odd = nn.Sequential(nn.Linear(E, E))
    odd.attn = nn.MultiheadAttention(E, H, add_bias_kv=True)
    with pytest.raises(bc.ConfigError, match=r"attn \(MultiheadAttention\)"):
        bc.apply(odd, {"feedback": {"rule": "fa"}})
    model = nn.Sequential(nn.Linear(E, E))
    model.attn = nn.MultiheadAttention(E, H)
    keys = set(model.state_dict())
    bc.apply(model, {"feedback": {"rule": "fa"}})
    assert {"attn.feedback_weight", "attn.out_proj.feedback_weight"} <= set(model.state_dict())
    bc.remove(model)
    assert type(model.attn) is nn.MultiheadAttention and type(model.attn.out_proj) is not bc.nn.FeedbackLinear
    assert set(model.state_dict()) == keys


class _ReadsWeight(nn.Module):
    """An owner whose forward reads its child's weight without calling the child."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(E, 3)

    def forward(self, x):
        return F.linear(x, self.lin.weight, self.lin.bias * 2)


def test_owner_reads_are_routed_or_refused(monkeypatch):
    with pytest.raises(bc.ConfigError, match=r"\(root\) \(_ReadsWeight\)"):  # converting lin alone: silent bp
        bc.apply(_ReadsWeight(), {"feedback": {"rule": "fa"}})
    monkeypatch.setitem(owners.OWNER_CLASSES, _ReadsWeight, ("lin",))
    model = bc.apply(_ReadsWeight().double(), {"feedback": {"rule": "fa"}})
    assert type(model).__name__ == "Routed_ReadsWeight"
    x = torch.randn(5, E, dtype=torch.double, requires_grad=True)
    c = torch.randn(5, 3, dtype=torch.double)
    y = model(x)
    torch.testing.assert_close(y, x.detach() @ model.lin.weight.T + 2 * model.lin.bias)  # the owner's own bias
    (y * c).sum().backward()
    torch.testing.assert_close(x.grad, c @ model.lin.feedback_weight)
    torch.testing.assert_close(model.lin.weight.grad, c.T @ x.detach())
    bc.remove(model)
    assert type(model) is _ReadsWeight
