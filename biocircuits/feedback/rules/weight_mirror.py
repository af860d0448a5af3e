"""Weight mirrors (Akrout et al. 2019, "Deep learning without weight transport"): between training steps, a mirror
phase drives each layer with noise and the feedback synapses learn W from the correlation of input and response."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import Tensor, nn

from biocircuits.core.interface import StepState
from biocircuits.core.seeds import layer_seed, step_seed

from .feedback_alignment import FeedbackAlignment, FeedbackAlignmentOptions, weight_feedback_angle
from .registry import memory_format, register_rule


class WeightMirrorOptions(FeedbackAlignmentOptions):
    mirror_every: int = Field(
        8,
        ge=1,
        le=1_000_000,
        description="k: run the mirror phase after every k-th optimiser step (after the warm-up; 1 before issue #27).",
    )
    mirror_steps: int = Field(1, ge=1, le=10_000, description="Hebbian iterations per mirror phase.")
    warmup_steps: int = Field(
        40,
        ge=0,
        le=1_000_000,
        description="Also run the mirror phase after each of the first this many optimiser steps, whatever "
        "`mirror_every` (B learns W from its random start before the schedule thins out; 0 before issue #27).",
    )
    noise_std: float = Field(
        1.0,
        gt=0.0,
        le=1e3,
        description="s: std of the noise x ~ N(0, s^2) driving the layer's input units (B tends to (s^2 / lambda) W).",
    )
    samples: int = Field(
        64,
        ge=1,
        le=65_536,
        description="n: noise draws per mirror iteration (the mirror batch; 32 every step before issue #27's "
        "schedule, 64 before that). Its cost per iteration is 2 n multiply-adds per weight, whatever the training "
        "batch.",
    )
    lr: float = Field(
        0.05,
        gt=0.0,
        le=10.0,
        description="eta: the feedback synapses' Hebbian learning rate, B <- B + eta (y^T x / n - lambda B).",
    )
    weight_decay: float = Field(
        1.0, ge=0.0, le=1e3, description="lambda: decay of B in the mirror step (B relaxes at rate 1 - eta lambda)."
    )


@register_rule
class WeightMirror(FeedbackAlignment):
    """B (buffer ``feedback_weight``, initialised like FA's ``init``) is used in backward like FA's, and learns in a
    mirror phase that runs after each of the first ``warmup_steps`` optimiser steps and after every
    ``mirror_every``-th one (``bc.bind``'s after-step hook; only for layers whose W the bound optimiser updates), apart
    from training: ``mirror_steps`` iterations, each driving the layer's input units with noise x ~ N(0, s^2)
    (``samples`` draws; a conv layer gets one kernel-sized patch, so its response is one position) and reading the
    forward response y = W x (no bias). The feedback synapses then take the Hebbian step, with eta = ``lr`` and
    lambda = ``weight_decay``:

        B <- B + eta (y^T x / n - lambda B)        (linear; conv: the correlation of each kernel tap with y)

    E[y^T x / n] = s^2 W, so B relaxes geometrically (rate 1 - eta lambda) to (s^2 / lambda) W: with the defaults
    s = 1, lambda = 1, B -> W. The phase reads W only through the layer's forward response, never writes W or the
    optimiser's state, and draws its noise from (seed, layer, "mirror", ``mirror_count``), so it resumes exactly and
    is identical on every DDP rank.

    Schedule and mirror batch (issue #27). Akrout et al.'s released code (``fcnn/FCNN_WM.py``) runs an initial
    mirror pass over the training set's worth of batches, then one mirror iteration after every training batch, on a
    mirror batch as large as the training batch (128; noise amplitude 0.1, mirror rate 0.01). Ours is their schedule,
    thinned: a warm-up (a phase after each of the first ``warmup_steps`` = 40 optimiser steps, while B learns W from
    its random start), then one iteration of ``samples`` = 64 one-patch draws per layer after every
    ``mirror_every`` = 8th step (``mirror_every`` 1 is their every-batch schedule; the warm-up then changes nothing).
    An iteration costs 2 n multiply-adds per weight (two matrix products per layer, whatever the training batch), so
    after the warm-up the phase costs 8 draws per step: 1.3% of the FLOPs of a resnet18 step at 64x64 and batch 32
    (the former default, 32 draws after every step: 5.4%; docs/profiles.md). Why this schedule: B averages its
    estimates over about 1 / (eta lambda) = 20 iterations, i.e. n / (eta lambda) = 1,280 draws (640 before), and its
    angle to W shrinks as that count grows against the layer's fan-in; the price is a lag of up to k steps behind W's
    updates and a slow start (20 k steps to relax), which the warm-up removes. On the quickstart (3 seeds,
    docs/benchmarks.md) the defaults keep B as close to W as the former default (mean angle over training 23.8 +- 0.6
    against 23.4 +- 0.5 degrees) at the same accuracy (94.1 +- 0.2% against 94.0 +- 0.6%) for a quarter of its
    draws; every-8-step schedules without the warm-up lagged (mean angle 47-48 degrees, 1.4-1.9 points lower). 128
    draws every 8 steps (with the warm-up) aligns B better still (20.3 degrees) at twice the defaults' cost."""

    name = "weight_mirror"
    Options = WeightMirrorOptions
    learns_feedback = True
    # the schedule, whose defaults changed in #27: a saved config records it; one saved before ran 32 draws every step
    recorded_options = {"samples": 32, "mirror_every": 1, "warmup_steps": 0}

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)  # feedback_weight, as feedback alignment's
        weight = layer.weight.detach()
        self.register_buffer(layer, "mirror_count", torch.zeros((), dtype=torch.int64, device=weight.device))
        self.register_buffer(layer, "optimizer_steps", torch.zeros((), dtype=torch.int64, device=weight.device))
        self.mirror_seed = layer_seed(self.seed, qualname + "#mirror")  # not the stream of the error noise

    def report(self, layer: nn.Module) -> dict[str, float]:
        """The mirror phase's figures: iterations so far and the angle between W and B (degrees)."""
        return {"mirror_iterations": int(layer.mirror_count), "weight_feedback_angle": weight_feedback_angle(layer)}

    @torch.no_grad()
    def mirror(self, layer: nn.Module) -> None:
        """One mirror iteration on ``layer`` (see the class docstring): x = s z with z ~ N(0, 1) drawn in the default
        dtype from (seed, layer, "mirror", ``mirror_count``), shape (``samples``, in_features) or (``samples``, C_in,
        *patch), then B <- (1 - eta lambda) B + (eta s^2 / n) (z W^T)^T z as one product accumulated into B
        ([`hebbian_step`][biocircuits.feedback.rules.weight_mirror.hebbian_step])."""
        o = self.options
        layer.mirror_count += 1
        weight = layer.weight.detach()
        gen = torch.Generator(device=weight.device).manual_seed(step_seed(self.mirror_seed, int(layer.mirror_count)))
        dilation = tuple(getattr(layer, "dilation", ()))  # a linear layer has no kernel taps
        patch = [d * (k - 1) + 1 for d, k in zip(dilation, weight.shape[2:], strict=True)]
        in_units = getattr(layer, "in_channels", weight.shape[1])
        z = torch.randn(o.samples, in_units, *patch, generator=gen, device=weight.device)
        beta, alpha = 1.0 - o.lr * o.weight_decay, o.lr * o.noise_std**2 / o.samples
        hebbian_step(layer.feedback_weight, weight, z.to(weight.dtype), dilation, beta, alpha)

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step: StepState) -> None:
        for layer, rule in members:
            layer.optimizer_steps += 1
            steps, o = int(layer.optimizer_steps), rule.options
            if steps <= o.warmup_steps or steps % o.mirror_every == 0:
                for _ in range(o.mirror_steps):
                    rule.mirror(layer)


def hebbian_step(
    feedback: Tensor, weight: Tensor, z: Tensor, dilation: Sequence[int], beta: float, alpha: float
) -> None:
    """B <- beta B + alpha y^T z with y = z W^T, in place, for a linear layer (z (n, in)) or a conv layer driven by
    one (dilated) kernel-sized patch per draw (z (n, C_in, *patch), patch = dilation (k - 1) + 1 per spatial dim).

    The kernel reads the taps z[:, :, ::dilation] (n, C_in, *k). Per group g (weight (C_out, C_in / groups, *k)),
    flattened to the fan-in d = (C_in / groups) prod(k) in B's memory order (contiguous or channels-last):
    y_g = z_g W_g^T (n, C_out / groups), one position of the conv's response (no bias), and
    B_g <- beta B_g + alpha y_g^T z_g (C_out / groups, d), the conv's weight gradient for output y accumulated into B:
    one `bmm` and one `baddbmm_` of n C_out d multiply-adds each, the second writing B in place (one pass over B, no
    weight-sized temporary). B in another layout or dtype than these takes the product as a temporary (two passes)."""
    n, groups = z.shape[0], z.shape[1] // weight.shape[1]
    order = fan_in_order(feedback)
    taps = z[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))]
    taps = taps.reshape(n, groups, *weight.shape[1:]).permute(1, 0, *(dim + 1 for dim in order))
    flat_z = taps.reshape(groups, n, -1)  # (groups, n, d)
    y_t = torch.bmm(kernel_rows(weight, groups, order), flat_z.transpose(1, 2))  # y^T: (groups, C_out / groups, n)
    rows = feedback.permute(0, *order)
    if rows.is_contiguous() and feedback.dtype == z.dtype:
        rows.view(groups, -1, flat_z.shape[2]).baddbmm_(y_t, flat_z, beta=beta, alpha=alpha)
        return
    product = torch.bmm(y_t, flat_z).reshape(rows.shape).permute(*inverse(0, *order))
    feedback.mul_(beta).add_(product.to(feedback.dtype), alpha=alpha)


def fan_in_order(t: Tensor) -> tuple[int, ...]:
    """The fan-in dims of a weight-shaped ``t`` (1: inputs, 2..: kernel) in the order ``t`` stores them: (1, 2, ...)
    contiguous, (2, ..., 1) channels-last."""
    dims = tuple(range(1, t.dim()))
    return dims[1:] + dims[:1] if memory_format(t) != torch.contiguous_format else dims


def kernel_rows(t: Tensor, groups: int, order: Sequence[int]) -> Tensor:
    """``t`` (C_out, C_in / groups, *k) as (groups, C_out / groups, d), the fan-in flattened in ``order``."""
    return t.permute(0, *order).reshape(groups, t.shape[0] // groups, -1)


def inverse(*perm: int) -> list[int]:
    """The permutation that undoes ``perm``."""
    return sorted(range(len(perm)), key=perm.__getitem__)
