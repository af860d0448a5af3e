"""DANN's effective weight as one op (biocircuits/dale/inhibited.py): W = W_EE - W_EI W_IE and its three gradients
against explicit matrix products, the ops it runs (one product forward, two backward, no other pass over a
weight-sized tensor), and the plain expression under autocast."""

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils._python_dispatch import TorchDispatchMode

from biocircuits.dale.dann import DannWeight
from biocircuits.dale.inhibited import InhibitedWeight, inhibited_weight

VIEWS = {"view", "_unsafe_view", "reshape", "t", "transpose", "alias", "detach", "as_strided"}


class WeightSizedOps(TorchDispatchMode):
    """Names of the aten ops that return a tensor with ``numel`` entries (a weight-sized pass)."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.ops = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if isinstance(out, torch.Tensor) and out.numel() == self.numel and name not in VIEWS:
            self.ops.append(name)
        return out


def conv_dann(n_e=10, c=3, n_i=2):
    """A conv (n_e, c, 3, 3) whose weight is DANN's parametrisation, with random non-negative W_IE and W_EI."""
    torch.manual_seed(0)
    conv = nn.Conv2d(c, n_e, 3)
    w_ie, w_ei = torch.rand(n_i, c, 3, 3), torch.rand(n_e, n_i)
    parametrize.register_parametrization(conv, "weight", DannWeight(w_ie, w_ei, None, None), unsafe=True)
    return conv


def test_forward_and_gradients_equal_the_explicit_products():
    layer = conv_dann()
    p = layer.parametrizations.weight
    w_ee, w_ie, w_ei = p.original, p[0].weight_ie, p[0].weight_ei  # (10, 3, 3, 3), (2, 3, 3, 3), (10, 2)
    w = layer.weight
    flat_ie = w_ie.detach().reshape(2, -1)
    want = w_ee.detach() - (w_ei.detach() @ flat_ie).view(10, 3, 3, 3)
    assert torch.allclose(w, want, atol=1e-6)
    g = torch.randn(10, 3, 3, 3)
    (w * g).sum().backward()
    flat_g = g.reshape(10, -1)
    assert torch.equal(w_ee.grad, g)  # dL/dW_EE = G
    assert torch.allclose(w_ei.grad, -flat_g @ flat_ie.T, atol=1e-5)  # dL/dW_EI = -G W_IE^T
    assert torch.allclose(w_ie.grad, (-w_ei.detach().T @ flat_g).view(2, 3, 3, 3), atol=1e-5)  # -W_EI^T G


def test_the_op_passes_gradcheck_in_double():
    gen = torch.Generator().manual_seed(0)
    w_ee, w_ei, w_ie = (
        torch.rand(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in ((5, 7), (5, 2), (2, 7))
    )
    assert torch.autograd.gradcheck(InhibitedWeight.apply, (w_ee, w_ei, w_ie))


def test_one_product_forward_two_backward_and_no_other_weight_sized_pass():
    """The old autograd expression ran mm + sub forward and neg (of G) + 2 mm backward: two extra passes over W."""
    layer = conv_dann(n_e=12, c=4)  # W (12, 4, 3, 3): 432 entries, no other tensor here has that many
    with WeightSizedOps(432) as forward:
        w = layer.weight
    assert forward.ops == ["addmm"]
    g = torch.randn_like(w)
    with WeightSizedOps(432) as backward:
        w.backward(g)
    assert backward.ops == []  # G goes to W_EE as it is; the two products give (12, 2) and (2, 36)
    with WeightSizedOps(12 * 2) as small:
        layer.weight.backward(g)
    assert small.ops.count("mm") == 1 and "neg" in small.ops  # -G W_IE^T, negated at (n_e, n_i)


def test_autocast_keeps_the_plain_expression():
    gen = torch.Generator().manual_seed(0)
    w_ee, w_ei, w_ie = torch.rand(6, 4, 3, generator=gen), torch.rand(6, 2, generator=gen), torch.rand(2, 4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = inhibited_weight(w_ee, w_ei, w_ie)
        want = w_ee - (w_ei @ w_ie.reshape(2, -1)).view(6, 4, 3)
    assert got.dtype == torch.float32 and torch.equal(got, want)
