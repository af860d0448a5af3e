"""Divisive normalisation of each presynaptic population: why deep column-sign Dale networks collapse, and a fix.

**The collapse.** A column-sign weight matrix W (W_ij = s_j |W_ij|, s_j = +1 E / -1 I) is a rank-one mean part
plus a zero-mean random part,

    W = 1 mu^T + R,    mu_j = s_j E_i |W_ij|   (the column means: m_E > 0 on E columns, -m_I < 0 on I columns),

and the mean part dominates: its singular value is ~ sqrt(n_out n_in) m while R's are ~ sqrt(n_in) sd|W|, a ratio
of ~ sqrt(n_out) E|W| / sd|W| (about 10 for a 64-channel conv with half-normal magnitudes). Every output unit
therefore receives the same drive mu . x = m_E sum_{j in E} x_j - m_I sum_{j in I} x_j on top of its own R_i . x.
The balanced initialisation (``init: balanced``, sum_E |W_ij| = sum_I |W_ij|) cancels that drive only for inputs
whose E and I populations carry equal activity; non-negative rates co-fluctuate from sample to sample and place to
place (and ``residual: signed`` makes the I units' activity differ from the E units'), so mu . x varies and every
channel after the layer carries the same signal. Through a deep network the representation becomes one-dimensional:
on torchvision ResNet-18 at initialisation, the participation ratio (sum lambda)^2 / sum lambda^2 of the block
outputs' channel covariance stays at 1-2 under Dale while it grows from 1.5 to ~120 without Dale
(docs/results.md, "Deep Dale networks").

**The fix** (``dale.population_norm: divisive``): before each constrained layer, each population's input is divided
by its own mean activity at the same sample and position (divisive, shunting inhibition; Carandini & Heeger 2012):

    x~_j = x_j / (a_P(j) + eps),    a_P = (1 / |P|) sum_{k in P} x_k,    P in {E, I},

mean over the channels of one position of a conv input, over the features of one sample of a linear input. Then
sum_{j in E} x~_j = |E| a_E / (a_E + eps) ~ |E| and likewise for I, at every sample and position, so with balanced
rows and the column means constant within each population (as initialised) the mean part's drive is constant,

    mu . x~ = m_E |E| - m_I |I| = mean_i (sum_{j in E} |W_ij| - sum_{j in I} |W_ij|) = 0,

and each unit sees only its own R_i . x~: the layer mixes like an unconstrained one. Gradients flow through the
division (it is part of the forward pass, like BatchNorm).

**What it is: pooled inhibition.** The gain g_P = 1 / (a_P + eps) depends on the input, so the norm is an
inhibitory pathway of its own: per sample and position, two pools (one per population, E and I) each read all |P|
units of their population and divide them (shunting inhibition). The layer's input-output Jacobian is, for k in P,

    dz_i / dx_k = g_P W_ik - g_P^2 (1 / |P|) sum_{j in P} W_ij x_j,

W's weight scaled by a positive gain minus the pool's term, which has the sign of the population's drive onto unit
i: it subtracts from E inputs' effective weights (an E input can act as inhibitory) and adds to I inputs' (an I
input can act as excitatory). Dale's law holds for the gain-scaled weights g_P W_ij, not for the whole Jacobian: a
pooled interneuron per population is what the norm adds. The gain is a rate normalisation: it is positive and
bounded only for x >= 0, so a signed input (a negative entry) is refused with a ConfigError (exempt the layer, or
rectify its input). On the CPU every forward is checked; on an accelerator only the layer's first forward (a check
per forward would wait for the device at every layer).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from biocircuits.errors import ConfigError

from .slot import DALE, DaleAttachment


def divide_by_population_mean(x: Tensor, sign: Tensor, eps: float, dim: int) -> Tensor:
    """x_j / (a_P(j) + eps) with a_P the mean of population P's entries of x along ``dim`` (1: the channels of a
    conv input (batch, channels, *spatial); -1: the features of a linear input (..., features)).
    ``sign``: +1 E / -1 I per presynaptic unit."""
    shape = [1] * x.dim()
    shape[dim] = -1
    exc = (sign > 0).to(x.dtype).view(shape)
    n_e, n_i = float(exc.sum()), float(sign.numel() - exc.sum())
    a_e = (x * exc).sum(dim, keepdim=True) / max(n_e, 1.0)
    a_i = (x * (1 - exc)).sum(dim, keepdim=True) / max(n_i, 1.0)
    return x * (exc / (a_e + eps) + (1 - exc) / (a_i + eps))


class PopulationNormOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eps: float = Field(1e-3, gt=0.0, le=1e3)


@DALE.register
class PopulationNorm(DaleAttachment):
    """``dale.population_norm: divisive``, attached to every Dale-constrained layer beside its enforcer: a forward
    pre-hook replaces its input x by
    [`divide_by_population_mean`][biocircuits.dale.population_norm.divide_by_population_mean] (x, ``dale_sign``,
    ``eps``, channel dim of a conv / feature dim of a linear layer); ``detach`` removes the hook."""

    name = "population_norm"
    spec_key = "population_norm"
    choice = "divisive"
    shares_slot = True
    Options = PopulationNormOptions

    def __init__(self, options=None, seed: int = 0, sign: Tensor | None = None) -> None:
        super().__init__(options, seed, sign)
        self.eps = self.options.eps
        self.dim = 1
        self.handle: torch.utils.hooks.RemovableHandle | None = None
        self.input_checked = False

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        self.qualname = qualname
        self.dim = -1 if hasattr(layer, "in_features") else 1
        self.handle = layer.register_forward_pre_hook(self._pre)

    def _pre(self, layer: nn.Module, args: tuple) -> tuple:
        x = args[0]
        check = not torch.compiler.is_compiling() and (x.device.type == "cpu" or not self.input_checked)
        self.input_checked = self.input_checked or check
        if check and bool((x < 0).any()):
            raise ConfigError(f"{self.qualname}: dale.population_norm: divisive needs non-negative inputs (rates): "
                              "with a signed input the gain 1 / (a_P + eps) can be negative or unbounded",
                              key="dale.population_norm", expected="a layer whose input is >= 0 (after a ReLU)",
                              given=f"input min {float(x.min()):.3g}",
                              suggestion="exempt the layer (dale.exempt; <input> names the one reading the raw "
                                         "input) or rectify its input")
        return (divide_by_population_mean(x, layer.dale_sign, self.eps, self.dim), *args[1:])

    def detach(self, layer: nn.Module) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        super().detach(layer)
