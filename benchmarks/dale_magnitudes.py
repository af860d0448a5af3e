"""The Dale magnitudes W = s * f(V) alone (issue #27): time and accuracy of f = |.| and softplus on resnet18's 21
weight tensors (11.7M values), the code in the package against the formulas it replaced.

    python benchmarks/dale_magnitudes.py            # 15 interleaved rounds, sweeps of 6M + 4 x 1M values (~2 min)
    python benchmarks/dale_magnitudes.py --quick    # 5 rounds, a tenth of the sweeps (~30 s)

Prints two Markdown tables. **Time**: per variant, the median over rounds of its time over all 21 tensors, and the
median over rounds of its ratio to the old s * |V| (variants take turns in a fresh random order each round, so the
ratios hold on a loaded machine better than the times). **Accuracy** of softplus in float32 against log1p(exp(V))
computed in float64: the distance in float32 steps to the float64 value rounded once (0: correctly rounded), and the
error in ulps of the unrounded float64 value, over a grid of all of [-30, 30] and normal V at four scales.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLOCKS, clock_argument, command_line  # noqa: E402

from biocircuits.dale.enforcers.magnitudes import SignedAbs, SignedSoftplus, softplus  # noqa: E402


def kahan_softplus(v: Tensor) -> Tensor:
    """The float32 candidate that was measured and rejected (up to 2 ulp): max(v, 0) + log1p(e^-|v|), log1p(u) as
    log(w) - ((w - 1) - u) / w with w = 1 + u."""
    u = torch.exp(-v.abs())
    w = 1 + u
    return v.clamp(min=0) + (torch.log(w) - ((w - 1) - u) / w)


class OldSignedAbs(torch.autograd.Function):
    """The replaced node: forward |V| then the sign flip in place; backward (s dL/dW) sgn(V)."""

    @staticmethod
    def forward(ctx, latent: Tensor, sign: Tensor) -> Tensor:
        ctx.save_for_backward(latent, sign)
        return latent.abs().mul_(sign)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        latent, sign = ctx.saved_tensors
        return (grad * sign).mul_(latent.sgn()), None


class OldSignedSoftplus(torch.autograd.Function):
    """The replaced node: forward float32 F.softplus then the sign flip; backward as now."""

    @staticmethod
    def forward(ctx, latent: Tensor, sign: Tensor) -> Tensor:
        ctx.save_for_backward(latent, sign)
        return F.softplus(latent).mul_(sign)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        latent, sign = ctx.saved_tensors
        scaled = grad * sign
        return torch.ops.aten.softplus_backward.grad_input(scaled, latent, 1, 20, grad_input=scaled), None


def float64_sigmoid_backward(v: Tensor, s: Tensor, up: Tensor) -> None:
    """The backward measured and not used: dL/dV = sigmoid(V) s dL/dW with sigmoid in float64, rounded once (<= 1
    ulp, against 2 ulp for torch's float32 softplus backward)."""
    wide = v.double()
    torch.sigmoid(wide, out=wide)
    wide.float().mul_(s).mul_(up)


def node(function: type[torch.autograd.Function]) -> Callable[[Tensor, Tensor, Tensor], None]:
    """Forward and backward of one of the package's nodes, called as the autograd engine does."""

    def run(v: Tensor, s: Tensor, up: Tensor) -> None:
        latent = v.detach().requires_grad_()
        torch.autograd.grad(function.apply(latent, s), latent, up)

    return run


VARIANTS: dict[str, Callable[[Tensor, Tensor, Tensor], None]] = {
    "s \\|V\\|, old (abs, mul_; mul, sgn, mul_)": node(OldSignedAbs),
    "s \\|V\\|, now (copysign; sgn, mul_, mul_)": node(SignedAbs),
    "s softplus(V), old (float32 F.softplus)": node(OldSignedSoftplus),
    "s softplus(V), now (float64 F.softplus, rounded once)": node(SignedSoftplus),
    "backward only: torch's softplus_backward (now)": lambda v, s, up: torch.ops.aten.softplus_backward(
        up * s, v, 1, 20
    ),
    "backward only: float64 sigmoid, rounded once (not used)": float64_sigmoid_backward,
    "forward only: float32 F.softplus": lambda v, s, up: F.softplus(v),
    "forward only: softplus now": lambda v, s, up: softplus(v),
    "forward only: float32 max(v,0) + log1p by log (rejected)": lambda v, s, up: kahan_softplus(v),
}


def resnet18_tensors(gen: torch.Generator) -> list[tuple[Tensor, Tensor, Tensor]]:
    """(V, s, dL/dW) for each of resnet18's 21 weight shapes; V ~ N(-4, 1) (the latents of its initial weights)."""
    from torchvision.models import resnet18

    shapes = [p.shape for p in resnet18().parameters() if p.dim() > 1]
    out = []
    for shape in shapes:
        sign_shape = (shape[0], shape[1], *([1] * (len(shape) - 2)))
        s = torch.where(torch.rand(sign_shape, generator=gen) < 0.8, 1.0, -1.0)
        out.append((torch.randn(shape, generator=gen) - 4, s, torch.randn(shape, generator=gen)))
    return out


def time_table(rounds: int, clock: Callable[[], float]) -> str:
    gen = torch.Generator().manual_seed(0)
    tensors = resnet18_tensors(gen)
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    names, order = list(VARIANTS), random.Random(0)
    for fn in VARIANTS.values():  # warm-up
        for v, s, up in tensors:
            fn(v, s, up)
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            t0 = clock()
            for v, s, up in tensors:
                VARIANTS[name](v, s, up)
            times[name].append(clock() - t0)
    base = times[next(iter(VARIANTS))]
    lines = [
        "| variant (21 tensors, 11.7M values) | median ms | x old s \\|V\\| (median of ratios) |",
        "| --- | ---: | ---: |",
    ]
    for name, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(t, base, strict=True))
        lines.append(f"| {name} | {1e3 * statistics.median(t):.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def ulp_errors(x: Tensor, v: Tensor) -> tuple[int, float, float, float, float]:
    """Against log1p(e^v) in float64: max and mean distance in float32 steps to it rounded once, the share of
    values not correctly rounded, max and mean error in ulps of the unrounded value."""
    reference = torch.log1p(torch.exp(v.double()))
    steps = (x.view(torch.int32).long() - reference.float().view(torch.int32).long()).abs()
    exponent = torch.frexp(reference.float().double())[1]
    ulp = torch.ldexp(torch.ones_like(reference), exponent - 24).clamp(min=2.0**-149)
    real = (x.double() - reference).abs() / ulp
    return (
        int(steps.max()),
        float(steps.double().mean()),
        float((steps > 0).double().mean()),
        float(real.max()),
        float(real.mean()),
    )


def accuracy_table(scale: float) -> str:
    gen = torch.Generator().manual_seed(0)
    half = int(3_000_000 * scale)
    sweeps = {
        f"all of [-30, 30], step {30 / half:.0e}": torch.arange(-half, half + 1, dtype=torch.float64)
        .mul(30 / half)
        .float()
    }
    for sd in (0.01, 0.1, 1.0, 5.0):
        sweeps[f"N(0, {sd}^2), {int(1e6 * scale)} values"] = torch.randn(int(1e6 * scale), generator=gen) * sd
    formulas = {
        "torch float32 F.softplus (old)": F.softplus,
        "float64 F.softplus rounded once (now)": softplus,
        "float32 log1p by log (rejected)": kahan_softplus,
    }
    lines = [
        "| V | formula | max steps | mean steps | not correctly rounded | max ulp | mean ulp |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, v in sweeps.items():
        for name, f in formulas.items():
            m, mean, off, real_max, real_mean = ulp_errors(f(v), v)
            lines.append(
                f"| {label} | {name} | {m} | {mean:.4f} | {100 * off:.2f}% | {real_max:.3f} | {real_mean:.4f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 rounds and a tenth of the accuracy sweeps (~30 s)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    clock_argument(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 5 if args.quick else args.rounds
    load = os.getloadavg()[0]
    print(
        f"`{command_line('dale_magnitudes.py', argv)}` — torch {torch.__version__}, {args.threads} threads, "
        f"{rounds} interleaved rounds ({args.clock} clock); load average (1 min) {load:.1f} before, ",
        end="",
    )
    timing = time_table(rounds, CLOCKS[args.clock])
    print(f"{os.getloadavg()[0]:.1f} after\n\n{timing}\n")
    print(accuracy_table(0.1 if args.quick else 1.0))


if __name__ == "__main__":
    main()
