"""torch's RNN, GRU and LSTM converted (biocircuits/feedback/recurrent.py): bp equals the torch module exactly, BPTT
with feedback alignment equals a hand-unrolled computation with B, state_dict keys and removal."""

import copy

import pytest
import torch
from torch import nn

import biocircuits as bc
from biocircuits.errors import ConfigError
from biocircuits.feedback import FeedbackGRU, FeedbackLSTM, FeedbackRNN

MODULES = {
    "rnn_tanh": (nn.RNN, {}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "gru": (nn.GRU, {}),
    "lstm": (nn.LSTM, {}),
}
LAYOUTS = {
    "plain": {},
    "stacked_bidirectional_batch_first": {"num_layers": 2, "bidirectional": True, "batch_first": True},
    "no_bias": {"bias": False},
}


def _grads(module, x, hx, g):
    out, final = module(x, hx) if hx is not None else module(x)
    finals = final if isinstance(final, tuple) else (final,)
    loss = (out * g).sum() + sum((f * f).sum() for f in finals)
    inputs = [x] + ([*hx] if isinstance(hx, tuple) else [hx] if hx is not None else [])
    grads = torch.autograd.grad(loss, [*module.parameters(), *inputs])
    return out, finals, grads


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS)
@pytest.mark.parametrize("kind", MODULES.values(), ids=MODULES)
def test_bp_equals_the_torch_module(kind, layout):
    cls, kw = kind
    plain = cls(3, 4, **kw, **layout).double()
    conv = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "bp"}})
    assert isinstance(conv, cls) and type(conv) is not cls
    n = layout.get("num_layers", 1) * (2 if layout.get("bidirectional") else 1)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)  # [B, T] or [T, B]: both 2 x 5
    h0 = torch.randn(n, 2 if layout.get("batch_first") else 5, 4, dtype=torch.float64, requires_grad=True)
    hx = (h0, torch.randn_like(h0).requires_grad_()) if cls is nn.LSTM else h0
    for state in (None, hx):
        g = torch.randn_like(plain(x)[0])
        ref, got = _grads(plain, x, state, g), _grads(conv, x, state, g)
        torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)
        for a, b in zip(got[1] + got[2], ref[1] + ref[2], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", MODULES.values(), ids=MODULES)
def test_unbatched_input(kind):
    cls, kw = kind
    plain = cls(3, 4, **kw).double()
    conv = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "bp"}})
    x = torch.randn(6, 3, dtype=torch.float64)
    ref, got = plain(x), conv(x)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-12)


def test_bptt_fa_equals_the_hand_unrolled_computation():
    torch.manual_seed(3)
    rnn = bc.apply(nn.RNN(3, 4).double(), {"feedback": {"rule": "fa"}})
    w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    b_in = rnn.feedback_matrices["weight_ih_l0"].feedback_weight
    b_rec = rnn.feedback_matrices["weight_hh_l0"].feedback_weight
    assert not torch.allclose(b_rec, w_hh)
    T, B = 5, 2
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(T, B, 4, dtype=torch.float64)
    out, _ = rnn(x)
    (out * g).sum().backward()
    with torch.no_grad():  # forward: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), h_{-1} = 0
        hs = [torch.zeros(B, 4, dtype=torch.float64)]
        for t in range(T):
            hs.append(torch.tanh(x[t] @ w_ih.T + b_ih + hs[-1] @ w_hh.T + b_hh))
        torch.testing.assert_close(out, torch.stack(hs[1:]), rtol=1e-12, atol=1e-12)
        # backward: delta_t = (g_t + B_hh^T delta_{t+1}) * (1 - h_t^2); grad_x_t = B_ih^T delta_t
        gw_ih, gw_hh, gb, gx = torch.zeros_like(w_ih), torch.zeros_like(w_hh), torch.zeros_like(b_ih), []
        carry = torch.zeros(B, 4, dtype=torch.float64)
        for t in reversed(range(T)):
            delta = (g[t] + carry) * (1 - hs[t + 1] ** 2)
            gw_ih += delta.T @ x[t]
            gw_hh += delta.T @ hs[t]
            gb += delta.sum(0)
            gx.insert(0, delta @ b_in)
            carry = delta @ b_rec
    for got, want in (
        (w_ih.grad, gw_ih),
        (w_hh.grad, gw_hh),
        (b_ih.grad, gb),
        (b_hh.grad, gb),
        (x.grad, torch.stack(gx)),
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_state_dict_keys_load_and_remove():
    plain = nn.LSTM(3, 4, num_layers=2)
    keys = list(plain.state_dict())
    conv = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "fa"}})
    assert isinstance(conv, FeedbackLSTM)
    state = conv.state_dict()
    assert [k for k in state if not k.startswith("feedback_matrices.")] == keys
    assert {k for k in state if k.startswith("feedback_matrices.")} == {
        f"feedback_matrices.{k}.feedback_weight" for k in keys if k.startswith("weight_")
    }
    assert not torch.equal(
        state["feedback_matrices.weight_ih_l0.feedback_weight"],
        state["feedback_matrices.weight_ih_l1.feedback_weight"][:, :3],
    )
    conv.load_state_dict(plain.state_dict())  # a plain checkpoint loads; B is kept
    again = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "fa"}})
    again.load_state_dict(state)
    for k, v in state.items():
        assert torch.equal(again.state_dict()[k], v)
    bc.remove(conv)
    assert type(conv) is nn.LSTM and list(conv.state_dict()) == keys and not hasattr(conv, "feedback_matrices")


def test_kolen_pollack_and_sign_symmetry_act_on_each_matrix():
    torch.manual_seed(0)
    net = nn.GRU(3, 4)
    kp = bc.apply(copy.deepcopy(net), {"feedback": {"rule": "kolen_pollack"}})
    opt = bc.bind(torch.optim.SGD(kp.parameters(), lr=0.1, weight_decay=0.01), kp)
    hh = kp.feedback_matrices["weight_hh_l0"]
    b0 = hh.feedback_weight.clone()
    kp(torch.randn(4, 2, 3))[0].pow(2).sum().backward()
    grad = kp.weight_hh_l0.grad.clone()
    opt.step()
    torch.testing.assert_close(hh.feedback_weight, b0 - 0.1 * (grad + 0.01 * b0))  # B takes W's SGD step
    ss = bc.apply(copy.deepcopy(net), {"feedback": {"rule": "sign_symmetry"}})
    for name, matrix in ss.feedback_matrices.items():
        b = matrix.backward_weight()
        assert torch.equal(torch.sign(b), torch.sign(getattr(ss, name)))


def test_unsupported_rules_and_projections_are_refused():
    with pytest.raises(ConfigError, match="dfa"):
        bc.apply(nn.Sequential(nn.Linear(3, 3), nn.RNN(3, 4)), {"feedback": {"rule": "dfa"}})
    with pytest.raises(ConfigError, match="proj_size"):
        bc.apply(nn.LSTM(3, 4, proj_size=2), {"feedback": {"rule": "fa"}})
    model = nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 4, proj_size=2))
    bc.apply(model, {"feedback": {"rule": "fa", "exclude": ["1"]}})  # excluded: plain torch, backprop
    assert type(model[1]) is nn.LSTM


def test_error_transforms_are_refused_at_the_first_forward():
    rnn = bc.apply(nn.RNN(3, 4), {"feedback": {"rule": "fa"}, "phases": {"error_noise": 0.1}})
    with pytest.raises(ConfigError, match="phases"):
        rnn(torch.randn(2, 1, 3))


def test_classes_are_the_torch_classes():
    assert issubclass(FeedbackRNN, nn.RNN) and issubclass(FeedbackGRU, nn.GRU) and issubclass(FeedbackLSTM, nn.LSTM)


def test_lstm_bptt_fa_equals_the_hand_unrolled_computation():
    torch.manual_seed(4)
    lstm = bc.apply(nn.LSTM(3, 4).double(), {"feedback": {"rule": "fa"}})
    w_ih, w_hh, b_ih, b_hh = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0
    b_in = lstm.feedback_matrices["weight_ih_l0"].feedback_weight
    b_rec = lstm.feedback_matrices["weight_hh_l0"].feedback_weight
    T, B = 4, 2
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(T, B, 4, dtype=torch.float64)
    out, _ = lstm(x)
    (out * g).sum().backward()
    with torch.no_grad():  # forward: (i, f, c~, o) gates, c_t = f c_{t-1} + i c~, h_t = o tanh(c_t)
        hs, cs, gates = [torch.zeros(B, 4, dtype=torch.float64)], [torch.zeros(B, 4, dtype=torch.float64)], []
        for t in range(T):
            a = x[t] @ w_ih.T + b_ih + hs[-1] @ w_hh.T + b_hh
            i, f, c_new, o = a[:, :4].sigmoid(), a[:, 4:8].sigmoid(), a[:, 8:12].tanh(), a[:, 12:].sigmoid()
            gates.append((i, f, c_new, o))
            cs.append(f * cs[-1] + i * c_new)
            hs.append(o * cs[-1].tanh())
        torch.testing.assert_close(out, torch.stack(hs[1:]), rtol=1e-12, atol=1e-12)
        # backward: dh_t = g_t + B_hh^T da_{t+1}; dc_t = dh_t o (1 - tanh^2 c_t) + dc_{t+1} f_{t+1}
        gw_ih, gw_hh, gb, gx = torch.zeros_like(w_ih), torch.zeros_like(w_hh), torch.zeros_like(b_ih), []
        dh_next, dc_next, f_next = (torch.zeros(B, 4, dtype=torch.float64) for _ in range(3))
        for t in reversed(range(T)):
            i, f, c_new, o = gates[t]
            dh = g[t] + dh_next
            tc = cs[t + 1].tanh()
            dc = dh * o * (1 - tc**2) + dc_next * f_next
            da = torch.cat(
                [dc * c_new * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - c_new**2), dh * tc * o * (1 - o)], 1
            )
            gw_ih += da.T @ x[t]
            gw_hh += da.T @ hs[t]
            gb += da.sum(0)
            gx.insert(0, da @ b_in)
            dh_next, dc_next, f_next = da @ b_rec, dc, f
    for got, want in (
        (w_ih.grad, gw_ih),
        (w_hh.grad, gw_hh),
        (b_ih.grad, gb),
        (b_hh.grad, gb),
        (x.grad, torch.stack(gx)),
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
