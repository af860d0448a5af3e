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
channel after the layer carries the same signal. Through a deep network the representation becomes one-dimensional
(docs/results.md, "Deep Dale networks").

**The fix** (``dale.population_norm: divisive``): before each constrained layer, each population's input is divided
by its own mean absolute activity at the same sample and position (divisive, shunting inhibition; Carandini &
Heeger 2012, whose pools read rectified or squared responses):

    x~_j = g_P(j) x_j,    g_P = 1 / (m_P + eps),    m_P = (1 / |P|) sum_{k in P} |x_k|,    P in {E, I},

over the channels of one position of a conv input (batch, channels, *spatial), over the features of one sample of
a linear input (..., features). For rates (x >= 0) m_P is the population's mean rate and sum_{j in P} x~_j =
|P| m_P / (m_P + eps) ~ |P| at every sample and position, so with balanced rows and the column means constant within
each population (as initialised) the mean part's drive is constant, mu . x~ = m_E |E| - m_I |I| = 0, and each unit
sees only its own R_i . x~: the layer mixes like an unconstrained one.

**Any activation.** The gain is positive and bounded, 0 < g_P <= 1 / eps, for every input, signed or not
(Hardswish, SiLU, GELU: torchvision's MobileNetV3, EfficientNet, ConvNeXt), and equal to the rate version for
x >= 0. So the gain-scaled weights g_P(j) W_ij, the synapses the layer applies to x at a given input, keep W's
signs (Dale's law) for every input; a negative entry of x is the activity's own sign (an E unit at negative
activity delivers inhibition through its positive weights, which ``bc.audit(model, sample)`` reports), not the norm's.

**What it is: pooled inhibition.** Per sample and position, two inhibitory pool units, one per population: the E
pool reads the |E| E units, the I pool the |I| I units, each through |x| with equal weights 1 / |P|, and divides
(shunts) the units of its own population only; per layer 2 x positions pool units. (The I pool is driven by I
units, which Dale's law does not allow a synapse to do: read it as each I population's own shunting conductance.)
Because the gain depends on x, the layer's input-output Jacobian is not g W: for z_i = sum_j W_ij x~_j and k in P
(sgn(0) = 0, as torch differentiates |x|),

    dz_i / dx_k = g_P (W_ik - g_P sgn(x_k) c_iP / |P|),    c_iP = sum_{j in P} W_ij x_j   (the population's drive),

W's weight minus the pool's term. The pool's term is bounded: |c_iP| <= max_{j in P} |W_ij| |P| m_P, so
g_P |c_iP| / |P| <= rho_P max_{j in P} |W_ij| with rho_P = m_P / (m_P + eps) < 1. Hence s_P dz_i/dx_k >=
g_P (|W_ik| - rho_P max_{j in P} |W_ij|): in every row i and population P the entry of the largest |W_ik| keeps the
type (when non-zero), so **at most |P| - 1 entries per row and population act against the presynaptic type** (an E
input as inhibitory, an I input as excitatory), those with |W_ik| < rho_P max_j |W_ij| and sgn(x_k) s_P c_iP > 0;
which ones depends on x (for a conv, per kernel offset and input position).
[`jacobian_against_type_bound`][biocircuits.dale.population_norm.jacobian_against_type_bound] gives the layer's count;
``bc.audit`` reports it. Gradients flow through the division (part of the forward pass, like BatchNorm). ``bc.remove``
keeps the division as a forward pre-hook ([`PopulationDivision`][biocircuits.dale.population_norm.PopulationDivision])
on the plain layer, so the model computes the same function.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from .slot import DALE, DaleAttachment


def divide_by_population_mean(x: Tensor, sign: Tensor, eps: float, dim: int) -> Tensor:
    """x_j / (m_P(j) + eps) with m_P the mean of |x_k| over population P's entries along ``dim`` (1: the channels of
    a conv input (batch, channels, *spatial); -1: the features of a linear input (..., features)).
    ``sign``: +1 E / -1 I per presynaptic unit. Same shape as ``x``; finite for every finite x."""
    shape = [1] * x.dim()
    shape[dim] = -1
    exc = (sign > 0).to(x.dtype).view(shape)
    n_e, n_i = float(exc.sum()), float(sign.numel() - exc.sum())
    size = x.abs()
    m_e = (size * exc).sum(dim, keepdim=True) / max(n_e, 1.0)
    m_i = (size * (1 - exc)).sum(dim, keepdim=True) / max(n_i, 1.0)
    return x * (exc / (m_e + eps) + (1 - exc) / (m_i + eps))


def jacobian_against_type_bound(layer: nn.Module, sign: Tensor) -> int:
    """The most input-output Jacobian entries of a population-normed ``layer`` that can act against their
    presynaptic type at one input position: n_out k (|E| - 1 + |I| - 1) for a weight (n_out, n_in / groups, *k)
    (k the kernel size, 1 for a linear layer; per group for a grouped conv, whose rows read one group's units)."""
    weight = layer.weight
    groups = getattr(layer, "groups", 1) if sign.numel() % getattr(layer, "groups", 1) == 0 else 1
    n_out, n_in, k = weight.shape[0], sign.numel(), weight[0, 0].numel()
    per_group = sign.view(groups, n_in // groups)
    bound = 0
    for g in range(groups):
        n_e = int((per_group[g] > 0).sum())
        n_i = per_group[g].numel() - n_e
        bound += (n_out // groups) * k * (max(n_e - 1, 0) + max(n_i - 1, 0))
    return bound


class PopulationDivision:
    """A forward pre-hook replacing a layer's input x by
    [`divide_by_population_mean`][biocircuits.dale.population_norm.divide_by_population_mean] (x, sign, eps, dim);
    ``sign`` None reads the layer's ``dale_sign`` (while attached), else a copy kept by the hook (after ``bc.remove``,
    on the plain layer)."""

    def __init__(self, eps: float, dim: int, sign: Tensor | None = None) -> None:
        self.eps, self.dim = eps, dim
        self.sign = None if sign is None else sign.detach().cpu().clone()

    def __call__(self, layer: nn.Module, args: tuple) -> tuple:
        x = args[0]
        sign = layer.dale_sign if self.sign is None else self.sign.to(x.device)
        if not isinstance(layer, nn.MultiheadAttention):
            return (divide_by_population_mean(x, sign, self.eps, self.dim), *args[1:])
        # attention's in-projection reads query, key and value (positional): each divided, one tensor once
        done: dict[int, Tensor] = {}
        for t in args[:3]:
            if isinstance(t, Tensor) and id(t) not in done:
                done[id(t)] = divide_by_population_mean(t, sign, self.eps, self.dim)
        return (*(done.get(id(t), t) for t in args[:3]), *args[3:])


class PopulationNormOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eps: float = Field(1e-3, gt=0.0, le=1e3)


@DALE.register
class PopulationNorm(DaleAttachment):
    """``dale.population_norm: divisive``, attached to every Dale-constrained layer beside its enforcer: a forward
    pre-hook ([`PopulationDivision`][biocircuits.dale.population_norm.PopulationDivision]) replaces its input x by
    [`divide_by_population_mean`][biocircuits.dale.population_norm.divide_by_population_mean] (x, ``dale_sign``,
    ``eps``, channel dim of a conv / feature dim of a linear layer). ``detach`` (``bc.remove``) leaves the same division
    on the plain layer with a copy of the signs, so the function is kept."""

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

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        self.dim = -1 if hasattr(layer, "in_features") or isinstance(layer, nn.MultiheadAttention) else 1
        self.handle = layer.register_forward_pre_hook(PopulationDivision(self.eps, self.dim))

    def pooled_units(self, layer: nn.Module) -> int:
        """Inhibitory pool units per sample and position: one per non-empty population."""
        sign = layer.dale_sign
        return int((sign > 0).any()) + int((sign < 0).any())

    def audit_notes(self, layer: nn.Module, qualname: str) -> list[str]:
        """What the audit says of the pool (see the module docstring)."""
        sign = layer.dale_sign
        n_e = int((sign > 0).sum())
        return [
            f"{qualname}: population_norm: {self.pooled_units(layer)} pooled inhibitory units per sample and "
            f"position divide its input (E pool: {n_e} units, I pool: {sign.numel() - n_e}); up to "
            f"{jacobian_against_type_bound(layer, sign)} input-output Jacobian entries per input position act "
            "against the presynaptic type (the largest |W| of each row and population never)"
        ]

    def detach(self, layer: nn.Module) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
            layer.register_forward_pre_hook(PopulationDivision(self.eps, self.dim, layer.dale_sign))
        super().detach(layer)
