"""The magnitudes of W = s * f(V) (issue #27): abs in one pass, bit for bit the old s * |V| and its gradient (signed
zeros included); softplus computed in float64 and rounded once, checked in ulps against a float64 reference computed
here."""

import math

import mpmath
import pytest
import torch
import torch.nn.functional as F

from biocircuits.dale.enforcers.magnitudes import SignedAbs, SignedSoftplus, softplus

BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.bfloat16: torch.int16}


def bits(t: torch.Tensor) -> torch.Tensor:
    """The bit pattern (torch.equal alone takes -0.0 for +0.0)."""
    return t.detach().view(BITS[t.dtype])


@pytest.mark.parametrize("dtype", list(BITS))
@pytest.mark.parametrize(("shape", "sign_shape"), [((6, 4, 3, 3), (6, 4, 1, 1)), ((5, 7), (1, 7))])
def test_signed_abs_is_the_old_product_bit_for_bit(dtype, shape, sign_shape):
    """W = s |V| and dL/dV = (s dL/dW) sgn(V), written out as the old code computed them, against one
    copysign forward and sgn(V) s dL/dW backward; V = +0 and -0 under both signs, upstream +-1 and +-0 there."""
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(shape, generator=gen).to(dtype)
    s = torch.where(torch.rand(sign_shape, generator=gen) < 0.5, 1.0, -1.0).to(dtype)
    s.view(-1)[:2] = torch.tensor([1.0, -1.0])
    up = torch.randn(shape, generator=gen).to(dtype)
    zeros = torch.tensor([0.0, -0.0, 0.0, -0.0], dtype=dtype)
    # the first rows hold V = +-0 in columns 0 (s = +1) and 1 (s = -1)
    flat_cols = v.view(shape[0], shape[1], -1)
    flat_cols[:4, :2, 0] = zeros.view(4, 1)
    up.view(shape[0], shape[1], -1)[:4, :2, 0] = torch.tensor([1.0, -1.0, -0.0, 0.0], dtype=dtype).view(4, 1)
    latent = v.clone().requires_grad_()
    w = SignedAbs.apply(latent, s)
    (grad,) = torch.autograd.grad(w, latent, up)
    old_w = v.abs() * s
    old_grad = (up * s) * torch.sgn(v)
    assert torch.equal(bits(w), bits(old_w))
    assert torch.equal(bits(grad), bits(old_grad))
    # V = 0 gives 0 gradient, with the sign of dL/dW * s
    assert (grad.view(shape[0], shape[1], -1)[:4, :2, 0] == 0).all()


def ulp_distance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """|x - round32(reference)| counted in float32 steps (adjacent floats differ by 1; same-signed values)."""
    return (x.view(torch.int32).long() - reference.float().view(torch.int32).long()).abs()


def test_softplus_is_within_one_ulp_of_float64_and_mostly_correctly_rounded():
    """softplus(V) = log(1 + e^V) by hand in float64 (log1p of exp: exact to about 1e-16 relative over this
    range), rounded once to float32. The new formula: <= 1 ulp everywhere tested and correctly rounded on at least
    99.99% of values; torch's float32 F.softplus (the old code) misses the correct rounding on 10-20% of them."""
    gen = torch.Generator().manual_seed(0)
    grid = torch.arange(-300_000, 300_001, dtype=torch.float64).mul(1e-4).float()  # all of [-30, 30], step 1e-4
    sweeps = [grid] + [torch.randn(100_000, generator=gen) * scale for scale in (0.01, 0.1, 1.0, 5.0)]
    for v in sweeps:
        reference = torch.log1p(torch.exp(v.double()))
        mine = ulp_distance(softplus(v), reference)
        torch_float32 = ulp_distance(F.softplus(v), reference)
        assert int(mine.max()) <= 1
        assert float((mine == 0).double().mean()) >= 0.9999
        assert float(mine.double().mean()) < float(torch_float32.double().mean())
    # V > 20 returns V itself (the exact value rounds to it), V = 0 gives log 2 rounded
    v = torch.tensor([0.0, 20.5, 25.0, 88.0, -30.0])
    assert torch.equal(softplus(v), torch.log1p(torch.exp(v.double())).float())
    assert torch.equal(softplus(v)[1:4], v[1:4])


def correctly_rounded(v: float) -> float:
    """The float32 nearest to softplus(v) = log(1 + e^v), by mpmath at 120 bits (independent of torch): of the
    float32 neighbours of the float64 estimate, the one closest to the high-precision value."""
    exact = mpmath.log1p(mpmath.exp(mpmath.mpf(v)))
    guess = torch.tensor(float(exact), dtype=torch.float64).float()
    near = [torch.nextafter(guess, torch.tensor(d, dtype=torch.float32)) for d in (-math.inf, math.inf)]
    return float(min([guess, *near], key=lambda c: abs(mpmath.mpf(float(c)) - exact)))


def test_float32_softplus_is_correctly_rounded_against_mpmath():
    """On 3,000 values (the awkward ranges: around 0, tiny, large negative, up to the V > 20 branch) every float32
    softplus is the correctly rounded value computed by mpmath; torch's float32 F.softplus is not (it is one step
    off on some)."""
    gen = torch.Generator().manual_seed(1)
    v = torch.cat(
        [
            torch.randn(1000, generator=gen),
            torch.randn(1000, generator=gen) * 1e-3,
            torch.empty(1000).uniform_(-40, 25, generator=gen),
        ]
    )
    want = torch.tensor([correctly_rounded(float(x)) for x in v], dtype=torch.float32)
    assert torch.equal(softplus(v), want)
    assert not torch.equal(F.softplus(v), want)


def test_float64_softplus_is_torchs_and_the_node_signs_it():
    """Float64 V keeps F.softplus bit for bit; W = s softplus(V) carries each column's sign, and its gradient is
    (s dL/dW) sigmoid(V) (torch's softplus backward, 1 above V = 20) for float32 and float64 V."""
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(5, 7, generator=gen, dtype=torch.float64) * 4
    v[0, :3] = torch.tensor([25.0, 0.0, -30.0])
    assert torch.equal(softplus(v), F.softplus(v))
    s = torch.where(torch.rand(1, 7, generator=gen) < 0.5, 1.0, -1.0).double()
    up = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    for dtype in (torch.float64, torch.float32):
        latent = v.to(dtype).requires_grad_()
        w = SignedSoftplus.apply(latent, s.to(dtype))
        (grad,) = torch.autograd.grad(w, latent, up.to(dtype))
        assert torch.equal(w.detach(), s.to(dtype) * softplus(latent.detach()))
        derivative = torch.where(v > 20, 1.0, torch.exp(v) / (1 + torch.exp(v)))
        tol = {torch.float64: 1e-15, torch.float32: 1e-6}[dtype]
        torch.testing.assert_close(grad.double(), up * s * derivative, rtol=tol, atol=tol)
