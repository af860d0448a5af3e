"""Dale's ANNs (DANN; Cornford et al. 2021, "Learning to live with Dale's principle: ANNs with separate excitatory
and inhibitory units", ICLR): ``dale.architecture: dann``.

Each converted layer with d = fan-in inputs (in_features, or in_channels * kernel size) and n_e outputs becomes an
excitatory projection plus n_i = max(1, round(f n_e)) inhibitory interneurons (f = ``dann.inhibitory_fraction``,
default 0.1). Every input is excitatory, every weight is non-negative:

    W_EE (n_e, d) >= 0     input -> E outputs            (the layer's ``parametrizations.weight.original``)
    W_IE (n_i, d) >= 0     input -> I interneurons        (``parametrizations.weight.0.weight_ie``)
    W_EI (n_e, n_i) >= 0   I interneurons -> E outputs    (``parametrizations.weight.0.weight_ei``, subtracted)

Subtractive inhibition (the layer's ``weight`` is a parametrisation, so every feedback rule sees one matrix):

    z = W x + b,   W = W_EE - W_EI W_IE                       (W: (n_e, d); for a conv, W_IE is a kernel)

Divisive inhibition (``dann.divisive: true``; alpha (n_i,) and the gain g (n_e,) >= 0 are parameters
``...weight.0.alpha``, ``...weight.0.gain``):

    z = g * (W x) / gamma + b,    gamma = W_EI (exp(alpha) * (W_IE x))     (elementwise over outputs)

Initialisation (Cornford et al. 2021, section 3, as in the authors' released code; inputs taken as rectified,
x >= 0): W_EE ~ Exponential(lambda_E) i.i.d. with lambda_E = sqrt(d (2 pi - 1) / (2 pi)) (std 1/lambda_E);
W_EI = 1 / n_i; alpha = log(sqrt(2 pi - 1) / sqrt(d)), g = 1, b = 0 (at init gamma matches the standard deviation of
W x for rectified-Gaussian inputs). W_IE (``dann.init``):

- ``paper`` (default): W_IE ~ Exponential(lambda_E) i.i.d. like W_EE when n_i > 1 (so E[W_EI W_IE] = E[W_EE] and
  z - b is centred over the E units in expectation), and the mean row of W_EE when n_i = 1;
- ``mean_row``: every row of W_IE is the mean row of W_EE, W_IE[i, :] = (1/n_e) sum_k W_EE[k, :], so W_EI W_IE is
  the mean row and z - b = sum_j (W_EE[k, j] - mean_k W_EE[k, j]) x_j is centred over the E units exactly, for
  every x (the authors' later "centring as in LayerNorm" variant, here with W_EI = 1 / n_i).

Corrected updates (their section 4: updates of the inhibitory parameters reach every E output at once, so their
effect on the output distribution, measured by the Fisher information / KL divergence, is larger than that of an
E weight's; the paper scales them down): after each optimiser step the update dP of each inhibitory parameter is
rescaled, P <- P_before + c dP, with c = 1/sqrt(n_e) for W_IE, 1/d for W_EI and 1/(sqrt(n_e) d) for alpha (the
factors of the authors' code, which scales the gradients of plain SGD by them). Scaling the *update*
rather than the gradient keeps the correction under Adam (which would normalise a gradient scale away). Then every
non-negative tensor is projected, P <- max(P, 0).

Feedback rules: ``bp`` (exact gradients), ``sign_symmetry`` (B = sign(W) of the effective W above; deep networks
need its ``centre`` option, B = (I - 1 1^T / n_e) sign(W): W's columns start centred over the E outputs, sign(W)'s
do not. Column j of W is W_EE[:, j] - c_j with c_j = (W_EI W_IE)[:, j], so its mean sign is 2 exp(-lambda_E c_j) - 1.
With ``init: mean_row`` c_j is the column's mean, ~1/lambda_E: 2/e - 1 = -0.26 in (nearly) every column. With
``paper`` and n_i > 1, c_j is the mean of n_i exponentials: the mean sign varies by column, averaging
2 (1 + 1/n_i)^(-n_i) - 1 (-0.21 for a 64-output layer, n_i = 6) with P(lambda_E c_j < ln 2) of the columns
positive (0.24 for n_i = 6, 0.13 for 13, 0.05 for 26). Either way uncentred B^T amplifies the layer's mean error by
~0.2-0.26 n_e per layer; and ``magnitude: weight_rms``, since W's RMS is not the ``paper`` scale here), ``fa`` and
``dfa`` (B does not depend on W) read W like any layer; the gradients of W_EE, W_IE and W_EI are those of W (autograd
through W = W_EE - W_EI W_IE). Under divisive inhibition the gamma path is differentiated exactly (bp).
Rules whose B learns from W (``learns_feedback``: ``kolen_pollack``, ``weight_mirror``) are refused: they train B
from W's own update, which here is the sum of three tensors' updates. Linear and ungrouped conv layers
(``groups == 1``); divisive conv needs zero padding mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn.utils import parametrize

from biocircuits.core.celltypes import Populations, column_populations
from biocircuits.core.interface import Choice, LayerAttachment, StepState
from biocircuits.core.layers import trainable_weight
from biocircuits.core.scratch import kept_like
from biocircuits.errors import ConfigError

from .enforcers import DaleEnforcer, Project
from .inhibited import inhibited_weight
from .slot import DALE, DaleAttachment

EPS = 1e-6


class DannOptions(BaseModel):
    """``dale.dann``: ``inhibitory_fraction`` (n_i = max(1, round(fraction * n_e))), ``divisive`` inhibition,
    ``corrected_updates`` (the paper's scaling of the inhibitory parameters' updates), ``init`` of W_IE (``paper``:
    i.i.d. exponential like W_EE; ``mean_row``: W_EE's mean row, exact centring)."""

    model_config = ConfigDict(extra="forbid")
    inhibitory_fraction: float = Field(
        0.1, gt=0.0, le=1.0, description="Interneurons per layer: n_i = max(1, round(fraction * n_e))."
    )
    divisive: bool = Field(
        False, description="Divisive inhibition: z = g (W x) / gamma + b, gamma = W_EI (exp(alpha) (W_IE x))."
    )
    corrected_updates: bool = Field(
        True,
        description="The paper's scaling of the inhibitory parameters' updates (W_IE by 1/sqrt(n_e), W_EI by 1/d, "
        "alpha by both).",
    )
    init: Literal["paper", "mean_row"] = Field(
        "paper",
        description="W_IE's init: `paper` (i.i.d. exponential like W_EE) or `mean_row` (W_EE's mean row: exact "
        "centring).",
    )


class DannWeight(nn.Module):
    """Parametrisation W = W_EE - W_EI W_IE of a layer's weight (W_EE is the original); holds W_IE, W_EI and, for
    divisive inhibition, alpha and g. Shapes: W_EE (n_e, C, *k), W_IE (n_i, C, *k), W_EI (n_e, n_i)."""

    def __init__(self, w_ie: Tensor, w_ei: Tensor, alpha: Tensor | None, gain: Tensor | None) -> None:
        super().__init__()
        self.weight_ie = nn.Parameter(w_ie)
        self.weight_ei = nn.Parameter(w_ei)
        if alpha is not None and gain is not None:
            self.alpha = nn.Parameter(alpha)
            self.gain = nn.Parameter(gain)

    def forward(self, w_ee: Tensor) -> Tensor:
        return inhibited_weight(w_ee, self.weight_ei, self.weight_ie)  # one fused op (dale/inhibited.py)

    def non_negative(self) -> list[Tensor]:
        return [self.weight_ie, self.weight_ei, *([self.gain] if hasattr(self, "gain") else [])]


@torch.no_grad()
def dann_init(
    weight: Tensor, n_i: int, generator: torch.Generator, mode: str = "paper"
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(W_EE, W_IE, W_EI, alpha) of Cornford et al.'s initialisation for a weight shaped like ``weight``; ``mode``
    is ``dann.init`` (see the module docstring)."""
    n_e, d = weight.shape[0], weight[0].numel()
    lam = math.sqrt(d * (2 * math.pi - 1) / (2 * math.pi))

    def exponential(shape: tuple[int, ...]) -> Tensor:  # Exponential(lambda): -log(U) / lambda
        u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp_min(1e-12)
        return (-u.log() / lam).to(weight)

    w_ee = exponential(tuple(weight.shape))
    if mode == "paper" and n_i > 1:
        w_ie = exponential((n_i, *weight.shape[1:]))
    else:
        w_ie = w_ee.mean(0, keepdim=True).expand(n_i, *weight.shape[1:]).clone()
    w_ei = torch.full((n_e, n_i), 1.0 / n_i).to(weight)
    alpha = torch.full((n_i,), math.log(math.sqrt(2 * math.pi - 1) / math.sqrt(d))).to(weight)
    return w_ee, w_ie, w_ei, alpha


@DALE.register
class Dann(DaleAttachment):
    """``dale.architecture: dann`` on one layer (see the module docstring): registers ``dale_sign`` (all inputs
    E, +1), the parametrisation [`DannWeight`][biocircuits.dale.dann.DannWeight], the divisive forward hook; after each
    step, the corrected updates of the inhibitory parameters and the projection of every weight onto >= 0. Options:
    ``dale.dann``."""

    name = "dann"
    spec_key = "architecture"
    Options = DannOptions
    needs_snapshot = False

    @classmethod
    def check_partner(cls, own: Choice, partner: Choice) -> None:
        """Refuses a feedback rule whose B learns from W (W's update is here the sum of three tensors' updates) and
        an enforcer other than projection (every DANN weight is kept >= 0 by projection)."""
        if partner.cls.learns_feedback:
            raise ConfigError(
                f"dale.architecture: dann does not support {partner.cls.name}: B learns from W's "
                "update, here the sum of the updates of W_EE, W_EI and W_IE",
                key=partner.key,
                expected="a feedback rule whose B does not learn from W",
                given=partner.cls.name,
                suggestion="use architecture: column with this rule, or a rule with a fixed or "
                "sign-built B (bp, sign_symmetry, fa, dfa)",
            )
        if issubclass(partner.cls, DaleEnforcer) and partner.cls is not Project:
            raise ConfigError(
                "dale.architecture: dann keeps its weights non-negative by projection",
                key=partner.key,
                expected=Project.name,
                given=partner.cls.name,
                suggestion=f"drop {partner.key} or set it to {Project.name}",
            )

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        if getattr(layer, "groups", 1) != 1:
            raise ConfigError(
                f"{qualname}: dale.architecture: dann needs an ungrouped layer",
                key="dale.layers",
                given=f"groups={layer.groups}",
                suggestion="exempt it (dale.exempt)",
            )
        if self.options.divisive and getattr(layer, "padding_mode", "zeros") != "zeros":
            raise ConfigError(
                f"{qualname}: divisive DANN convs need padding_mode zeros",
                key="dale.dann.divisive",
                given=layer.padding_mode,
            )
        weight = layer.weight
        n_e = weight.shape[0]
        self.n_i = max(1, int(round(self.options.inhibitory_fraction * n_e)))
        self.n_e, self.d = n_e, weight[0].numel()
        gen = torch.Generator().manual_seed(self.layer_seed % (2**63))
        w_ee, w_ie, w_ei, alpha = dann_init(weight.detach().cpu(), self.n_i, gen, self.options.init)
        device = weight.device
        self.register_buffer(layer, "dale_sign", torch.ones(weight.shape[1], device=device, dtype=weight.dtype))
        with torch.no_grad():
            weight.copy_(w_ee)
            if layer.bias is not None:
                layer.bias.zero_()
        self.parameter_order = list(layer._parameters)
        divisive = self.options.divisive
        parametrize.register_parametrization(
            layer,
            "weight",
            DannWeight(
                w_ie.to(device),
                w_ei.to(device),
                alpha.to(device) if divisive else None,
                torch.ones(n_e, device=device, dtype=weight.dtype) if divisive else None,
            ),
            unsafe=True,
        )
        self.handle = layer.register_forward_hook(DivisiveInhibition()) if divisive else None

    def detach(self, layer: nn.Module) -> None:
        """Keep W = W_EE - W_EI W_IE as a plain weight, and divisive inhibition as a forward hook holding copies of
        W_IE, W_EI, alpha and g ([`DivisiveInhibition`][biocircuits.dale.dann.DivisiveInhibition]): the plain layer
        computes what the DANN layer did."""
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
            layer.register_forward_hook(DivisiveInhibition(inhibition(layer)))
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        order = {name: i for i, name in enumerate(self.parameter_order)}
        layer._parameters = dict(sorted(layer._parameters.items(), key=lambda kv: order.get(kv[0], len(order))))
        super().detach(layer)

    # --- what the audit and plasticity read ---------------------------------------------------------------------
    @torch.no_grad()
    def effective_violations(self, layer: nn.Module, gain: Tensor | None) -> int:
        """Every DANN weight is >= 0 and its inputs all E. A per-E-output gain g (a normalisation reading the
        layer's units) scales every synapse onto output o, W_EE[o, :] and W_EI[o, :] (and the divisive gain), by
        g_o: with g_o < 0 those E->E synapses act as inhibitory and the I->E ones as excitatory. Counted: the
        entries t with sign(g_o) t < 0 of those tensors, plus the negative entries of W_IE (no gain reaches it)."""
        if gain is None or gain.numel() != self.n_e:
            return self.count_violations(layer)
        p = inhibition(layer)
        sign = torch.sign(gain).to(p.weight_ei)
        rows = [trainable_weight(layer), p.weight_ei, *([p.gain] if hasattr(p, "gain") else [])]
        flipped = sum(int((t * sign.view(-1, *([1] * (t.dim() - 1))) < 0).sum()) for t in rows)
        return flipped + int((p.weight_ie < 0).sum())

    def growth_sign(self, layer: nn.Module, before: Tensor) -> float:
        return 1.0  # W_EE >= 0: |W_EE| grows with W_EE

    def synapse_tensors(self, layer: nn.Module) -> list[tuple[str, str, str]]:
        """(parameter path, pre, post) of the three synapse classes: W_EE E->E, W_IE E->I, W_EI I->E (plasticity
        rules match them by class)."""
        return [
            ("weight", "E", "E"),
            ("parametrizations.weight.0.weight_ie", "E", "I"),
            ("parametrizations.weight.0.weight_ei", "I", "E"),
        ]

    def population_counts(self, layer: nn.Module) -> Populations:
        """The E inputs (every presynaptic unit of a DANN layer is E) and, named apart, its n_i I interneurons."""
        return column_populations(layer)._replace(interneurons=self.n_i)

    @torch.no_grad()
    def count_violations(self, layer: nn.Module) -> int:
        """Negative entries of W_EE, W_IE, W_EI (and g)."""
        tensors = [trainable_weight(layer), *inhibition(layer).non_negative()]
        return int(sum(int((t < 0).sum()) for t in tensors))

    # --- hooks ----------------------------------------------------------------------------------------------------
    def corrections(self) -> dict[str, float]:
        return {
            "weight_ie": 1.0 / math.sqrt(self.n_e),
            "weight_ei": 1.0 / self.d,
            "alpha": 1.0 / (math.sqrt(self.n_e) * self.d),
        }

    @classmethod
    @torch.no_grad()
    def before_step_group(cls, members: Sequence[tuple[nn.Module, LayerAttachment]], step: StepState) -> None:
        """P_before of the corrected updates: one foreach copy into buffers kept across steps, no allocation."""
        held, sources = [], []
        for layer, att in members:
            if att.options.corrected_updates:
                p, store = inhibition(layer), att.__dict__.setdefault("_before", {})
                sources += [getattr(p, n).detach() for n in att.corrections() if hasattr(p, n)]
                held += [kept_like(store, n, getattr(p, n)) for n in att.corrections() if hasattr(p, n)]
        if held:
            torch._foreach_copy_(held, sources)

    @classmethod
    @torch.no_grad()
    def after_step_group(cls, members: Sequence[tuple[nn.Module, LayerAttachment]], step: StepState) -> None:
        tensors, moved, before, scale = [], [], [], []
        for layer, att in members:
            p = inhibition(layer)
            if att.options.corrected_updates:
                for n, c in att.corrections().items():
                    if n in att._before:
                        moved.append(getattr(p, n))
                        before.append(att._before[n])
                        scale.append(c)
            tensors += [trainable_weight(layer), *p.non_negative()]
        if moved:  # P <- P_before + c (P - P_before), fused over every layer
            torch._foreach_sub_(moved, before)
            torch._foreach_mul_(moved, scale)
            torch._foreach_add_(moved, before)
        torch._foreach_clamp_min_(tensors, 0.0)


def inhibition(layer: nn.Module) -> DannWeight:
    """The [`DannWeight`][biocircuits.dale.dann.DannWeight] parametrisation of a DANN layer."""
    return layer.parametrizations.weight[0]


class DivisiveInhibition:
    """Forward hook of divisive DANN layers (``_divide``): reads the layer's
    parametrisation while attached, or, given one (``bc.remove``), keeps detached copies of its W_IE, W_EI, alpha and g
    for the plain layer."""

    def __init__(self, held: DannWeight | None = None) -> None:
        names = ("weight_ie", "weight_ei", "alpha", "gain")
        self.tensors = None if held is None else {n: getattr(held, n).detach().clone() for n in names}

    def __call__(self, layer: nn.Module, args: tuple, out: Tensor) -> Tensor:
        if self.tensors is None:
            return _divide(inhibition(layer), layer, args[0], out)
        held = SimpleNamespace(**{n: t.to(out.device) for n, t in self.tensors.items()})
        return _divide(held, layer, args[0], out)


def _divide(p: DannWeight | SimpleNamespace, layer: nn.Module, x: Tensor, out: Tensor) -> Tensor:
    """Divisive DANN: z = g * (W x) / gamma + b, gamma = W_EI (exp(alpha) * (W_IE x)), from ``p``'s W_IE, W_EI,
    alpha and g; ``out`` = W x + b, the layer's own output."""
    if isinstance(layer, nn.Linear):
        h = F.linear(x, p.weight_ie) * p.alpha.exp()
        gamma = F.linear(h, p.weight_ei)
        shape = (-1,)
    else:
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[x.dim()]
        h = conv(x, p.weight_ie, None, layer.stride, layer.padding, layer.dilation)
        h = h * p.alpha.exp().view(1, -1, *([1] * (x.dim() - 2)))
        gamma = torch.einsum("ni...,oi->no...", h, p.weight_ei)
        shape = (1, -1, *([1] * (x.dim() - 2)))
    bias = layer.bias.view(shape) if layer.bias is not None else 0.0
    return p.gain.view(shape) * (out - bias) / (gamma + EPS) + bias
