"""Each rule and layer type against references computed by hand: grad_input = B^T delta, grad_W/grad_b = autograd."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import biocircuits as bc
from biocircuits.feedback.layers import FEEDBACK_CLASSES

RULE_SETTINGS = [
    ("bp", {}),
    ("fa", {}),
    ("sign_symmetry", {"magnitude": "init_std"}),
    ("sign_symmetry", {"magnitude": "unit"}),
    ("sign_symmetry", {"magnitude": "weight_rms"}),
    ("sign_symmetry", {"magnitude": "random_fixed"}),
    ("sign_symmetry", {"magnitude": "random_batch"}),
]
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def convert_one(module, rule, options):
    return FEEDBACK_CLASSES[type(module)].convert(module, bc.make_rule(rule, options, seed=3), "layer")


@pytest.mark.parametrize("rule,options", RULE_SETTINGS)
def test_linear_any_leading_shape(rule, options):
    torch.manual_seed(1)
    plain = nn.Linear(7, 5).double()
    layer = convert_one(nn.Linear(7, 5).double(), rule, options)
    layer.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, 3, 7, dtype=torch.double, requires_grad=True)
    delta = torch.randn(2, 3, 5, dtype=torch.double)
    y = layer(x)
    B = layer.backward_weight()  # the B of this forward's backward
    y.backward(delta)
    # reference: explicit matmuls
    assert torch.allclose(x.grad, delta @ B, atol=1e-12)
    d2, x2 = delta.reshape(-1, 5), x.detach().reshape(-1, 7)
    assert torch.allclose(layer.weight.grad, d2.T @ x2, atol=1e-12)
    assert torch.allclose(layer.bias.grad, d2.sum(0), atol=1e-12)
    # and grad_W / grad_b equal plain autograd
    xp = x.detach().clone().requires_grad_()
    plain(xp).backward(delta)
    assert torch.allclose(layer.weight.grad, plain.weight.grad, atol=1e-12)
    assert torch.allclose(layer.bias.grad, plain.bias.grad, atol=1e-12)
    if rule == "bp":
        assert torch.equal(x.grad, xp.grad)


def conv_case(dim, cin, cout, k, stride, padding, dilation, groups, padding_mode, rule, options, size, bias=True):
    torch.manual_seed(2)
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim]
    plain = cls(cin, cout, k, stride, padding, dilation, groups, bias, padding_mode).double()
    layer = convert_one(
        cls(cin, cout, k, stride, padding, dilation, groups, bias, padding_mode).double(), rule, options
    )
    layer.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, cin, *([size] * dim), dtype=torch.double, requires_grad=True)
    y = layer(x)
    B = layer.backward_weight()
    delta = torch.randn_like(y)
    y.backward(delta)
    xp = x.detach().clone().requires_grad_()
    yp = plain(xp)
    assert torch.allclose(y, yp, atol=1e-12)
    yp.backward(delta)
    # reference for grad_input: conv_transpose of delta with B, on the padded input, then un-pad by hand
    if padding_mode == "zeros" and not isinstance(padding, str):
        pad = [padding] * dim if isinstance(padding, int) else list(padding)
        ref = CONV_TRANSPOSE[dim](delta, B, stride=stride, padding=0, dilation=dilation, groups=groups)
        full = torch.zeros(2, cin, *[size + 2 * p for p in pad], dtype=torch.double)
        sl = tuple(slice(0, s) for s in ref.shape[2:])
        full[(slice(None), slice(None), *sl)] = ref
        crop = tuple(slice(p, p + size) for p in pad)
        ref = full[(slice(None), slice(None), *crop)]
        assert torch.allclose(x.grad, ref, atol=1e-10)
    else:  # padding modes and 'same': autograd through the padding with the layer's B in place of W
        ref_layer = cls(cin, cout, k, stride, padding, dilation, groups, bias, padding_mode).double()
        with torch.no_grad():
            ref_layer.weight.copy_(B)
            if bias:
                ref_layer.bias.copy_(layer.bias)
        xr = x.detach().clone().requires_grad_()
        ref_layer(xr).backward(delta)
        assert torch.allclose(x.grad, xr.grad, atol=1e-10)
    assert torch.allclose(layer.weight.grad, plain.weight.grad, atol=1e-10)
    if bias:
        assert torch.allclose(layer.bias.grad, plain.bias.grad, atol=1e-10)
    if rule == "bp":
        assert torch.allclose(x.grad, xp.grad, atol=1e-12)


@pytest.mark.parametrize("rule,options", RULE_SETTINGS)
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_conv_each_rule_and_dim(rule, options, dim):
    conv_case(dim, 4, 6, 3, 2, 1, 1, 2, "zeros", rule, options, size=7)


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("rule", ["fa", "sign_symmetry"])
def test_conv_padding_modes(padding_mode, rule):
    conv_case(2, 3, 4, 3, 1, 2, 1, 1, padding_mode, rule, {}, size=6)


@pytest.mark.parametrize("dilation,k", [(1, 4), (2, 3), (1, 3)])
def test_conv_padding_same_and_valid(dilation, k):
    conv_case(2, 3, 4, k, 1, "same", dilation, 1, "zeros", "fa", {}, size=7)
    conv_case(1, 3, 4, k, 1, "valid", dilation, 1, "zeros", "fa", {}, size=9)


def test_depthwise_conv():
    conv_case(2, 6, 12, 3, 1, 1, 1, 6, "zeros", "sign_symmetry", {"magnitude": "unit"}, size=5, bias=False)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    dim=st.integers(1, 3),
    groups=st.sampled_from([1, 2, 3]),
    cin_per=st.integers(1, 3),
    cout_per=st.integers(1, 3),
    k=st.integers(1, 3),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    rule=st.sampled_from(["bp", "fa", "sign_symmetry"]),
    bias=st.booleans(),
)
def test_fuzz_conv_shapes(dim, groups, cin_per, cout_per, k, stride, padding, dilation, rule, bias):
    size = dilation * (k - 1) + 1 + stride + 1
    conv_case(
        dim,
        cin_per * groups,
        cout_per * groups,
        k,
        stride,
        padding,
        dilation,
        groups,
        "zeros",
        rule,
        {},
        size=size,
        bias=bias,
    )


def test_weight_transport_is_auditable():
    """Perturbing W after the forward and before the backward changes grad_input under bp, not under fa."""
    results = {}
    for rule in ("bp", "fa"):
        grads = []
        for perturb in (False, True):
            torch.manual_seed(0)
            layer = bc.nn.FeedbackLinear(6, 4, rule=rule, seed=1).double()
            x = torch.randn(3, 6, dtype=torch.double, requires_grad=True)
            y = layer(x)
            if perturb:
                layer.weight.data.add_(1.0)  # storage the saved tensors would read, if they read W
            y.sum().backward()
            grads.append(x.grad.clone())
        results[rule] = torch.equal(grads[0], grads[1])
    assert results == {"bp": False, "fa": True}


def test_no_grad_forward_matches_plain():
    layer = bc.nn.FeedbackConv2d(3, 5, 3, padding=1, rule="fa")
    plain = nn.Conv2d(3, 5, 3, padding=1)
    plain.load_state_dict(layer.state_dict(), strict=False)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(layer(x), plain(x))
