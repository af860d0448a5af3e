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
from .registry import register_rule


class WeightMirrorOptions(FeedbackAlignmentOptions):
    mirror_every: int = Field(
        1, ge=1, le=1_000_000, description="Run the mirror phase after every this many optimiser steps."
    )
    mirror_steps: int = Field(1, ge=1, le=10_000, description="Hebbian iterations per mirror phase.")
    noise_std: float = Field(
        1.0,
        gt=0.0,
        le=1e3,
        description="s: std of the noise x ~ N(0, s^2) driving the layer's input units (B tends to (s^2 / lambda) W).",
    )
    samples: int = Field(
        32,
        ge=1,
        le=65_536,
        description="n: noise draws per mirror iteration (the mirror batch; 64 before issue #27). Its cost per "
        "iteration is 2 n multiply-adds per weight, whatever the training batch.",
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
    mirror phase that runs after every ``mirror_every``-th optimiser step (``bc.bind``'s after-step hook; only for
    layers whose W the bound optimiser updates), apart from training: ``mirror_steps`` iterations, each driving the
    layer's input units with noise x ~ N(0, s^2) (``samples`` draws; a conv layer gets one kernel-sized patch, so its
    response is one position) and reading the forward response y = W x (no bias). The feedback synapses then take
    the Hebbian step, with eta = ``lr`` and lambda = ``weight_decay``:

        B <- B + eta (y^T x / n - lambda B)        (linear; conv: the correlation of each kernel tap with y)

    E[y^T x / n] = s^2 W, so B relaxes geometrically (rate 1 - eta lambda) to (s^2 / lambda) W: with the defaults
    s = 1, lambda = 1, B -> W. The phase reads W only through the layer's forward response, never writes W or the
    optimiser's state, and draws its noise from (seed, layer, "mirror", ``mirror_count``), so it resumes exactly and
    is identical on every DDP rank.

    Schedule and mirror batch. Akrout et al.'s released code (``fcnn/FCNN_WM.py``) runs one mirror iteration after
    every training batch, on a mirror batch as large as the training batch (128; noise amplitude 0.1, mirror rate
    0.01), after an initial mirror pass over the training set's worth of batches. Ours keeps their schedule (the
    defaults: ``mirror_every`` 1, ``mirror_steps`` 1) and takes a fixed, smaller mirror batch, ``samples`` = 32
    one-patch draws per layer: an iteration costs 2 n multiply-adds per weight (two matrix products per layer), so
    its share of a step falls with the training batch and image size; at n = 32 it is 5.4% of the FLOPs of a
    resnet18 step at 64x64 and batch 32 (10.7% at the former default 64; docs/profiles.md). B averages its
    estimates over about 1 / (eta lambda) = 20 iterations, i.e. about 640 draws at the defaults. ``mirror_every``
    k > 1 amortises the phase further (k times cheaper per step; B then lags W's updates by up to k steps)."""

    name = "weight_mirror"
    Options = WeightMirrorOptions
    learns_feedback = True

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
        """One mirror iteration on ``layer`` (see the class docstring): x = s z with z ~ N(0, 1) drawn in float32 from
        (seed, layer, "mirror", ``mirror_count``), shape (``samples``, in_features) or (``samples``, C_in, *patch)."""
        o = self.options
        layer.mirror_count += 1
        weight = layer.weight.detach()
        gen = torch.Generator(device=weight.device).manual_seed(step_seed(self.mirror_seed, int(layer.mirror_count)))
        if weight.dim() == 2:
            x = torch.randn(o.samples, weight.shape[1], generator=gen, device=weight.device).mul_(o.noise_std)
            x = x.to(weight.dtype)
            correlation = (x @ weight.t()).t() @ x / o.samples
        else:
            patch = [d * (k - 1) + 1 for d, k in zip(layer.dilation, layer.kernel_size, strict=True)]
            x = torch.randn(o.samples, layer.in_channels, *patch, generator=gen, device=weight.device)
            correlation = patch_correlation(x.mul_(o.noise_std).to(weight.dtype), weight, layer.dilation, o.samples)
        feedback = layer.feedback_weight  # B <- (1 - eta lambda) B + eta y^T x / n: two passes over B
        feedback.mul_(1.0 - o.lr * o.weight_decay).add_(correlation.to(feedback.dtype), alpha=o.lr)

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members, step: StepState) -> None:
        for layer, rule in members:
            layer.optimizer_steps += 1
            if int(layer.optimizer_steps) % rule.options.mirror_every == 0:
                for _ in range(rule.options.mirror_steps):
                    rule.mirror(layer)


def patch_correlation(x: Tensor, weight: Tensor, dilation: Sequence[int], samples: int) -> Tensor:
    """y^T x / n for a conv layer driven by one (dilated) kernel-sized patch per sample, as matrix products.

    x (n, C_in, *patch) is the noise, patch = dilation (k - 1) + 1 per spatial dim; the kernel reads the taps
    x[:, :, ::dilation] (n, C_in, *k). Per group g (weight (C_out, C_in / groups, *k)), flattened to the fan-in
    d = (C_in / groups) prod(k): y_g = x_g W_g^T (n, C_out / groups), one position of the conv's response (no bias),
    and the correlation y_g^T x_g / n (C_out / groups, d), i.e. the conv's weight gradient for output y: two
    batched products of n C_out d multiply-adds each. Returns the correlation shaped like ``weight``."""
    taps = x[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))]
    groups = x.shape[1] // weight.shape[1]
    n = x.shape[0]
    flat_x = taps.reshape(n, groups, -1).transpose(0, 1)  # (groups, n, d)
    flat_w = weight.reshape(groups, weight.shape[0] // groups, -1)  # (groups, C_out / groups, d)
    y = torch.bmm(flat_x, flat_w.transpose(1, 2))  # (groups, n, C_out / groups)
    return (torch.bmm(y.transpose(1, 2), flat_x) / samples).reshape(weight.shape)
