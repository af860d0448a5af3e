"""Sign symmetry (Liao, Leibo & Poggio 2016; Xiao et al. 2018): B = sign(W) times a magnitude."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from biocircuits.core.interface import Choice
from biocircuits.core.layers import weight_sources
from biocircuits.errors import ConfigError

from .registry import Feedback, FeedbackRule, draw_init_uniform, draw_paper, init_std, paper_scale, register_rule

Magnitude = Literal["paper", "init_std", "unit", "weight_rms", "random_fixed", "random_batch"]


class SignSymmetryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    magnitude: Magnitude = Field(
        "paper",
        description="M in B = sign(W) * M: `paper`, `init_std`, `unit`, `weight_rms`, `random_fixed` (|R| drawn once)"
        " or `random_batch` (|R| redrawn every training forward).",
    )
    random_init: Literal["paper", "uniform"] = Field(
        "paper",
        description="R's distribution for the random magnitudes: `paper` (conv N(0, 2 / (k_h k_w C_out)), linear "
        "U(+-1/sqrt(fan_in))) or `uniform` (U(+-1/sqrt(fan_in))).",
    )
    centre: bool = Field(
        False,
        description="Subtract from each input's feedback weights their mean over the output units: B = (I - 1 1^T / "
        "n_out) sign(W) M.",
    )

    @model_validator(mode="after")
    def _random_init_needs_random_magnitudes(self) -> SignSymmetryOptions:
        if "random_init" in self.model_fields_set and self.magnitude not in RANDOM_INITS_FOR:
            raise ValueError(f"random_init applies to magnitude random_fixed or random_batch, not {self.magnitude!r}")
        return self


# magnitudes drawn at random, and the distributions R is drawn from (M = |R|)
RANDOM_INITS_FOR = ("random_fixed", "random_batch")
RANDOM_INITS: dict[str, Callable[..., Tensor]] = {"paper": draw_paper, "uniform": draw_init_uniform}


# The scalar s of B = s * sign(W) (None: 1), from the layer and its current W.
def _init_std(layer: nn.Module, weight: Tensor) -> float:
    return init_std(weight)


def _weight_rms(layer: nn.Module, weight: Tensor) -> Tensor:
    return torch.linalg.vector_norm(weight) / weight.numel() ** 0.5


SCALES: dict[str, Callable[[nn.Module, Tensor], float | Tensor | None]] = {
    "paper": lambda layer, weight: paper_scale(weight),
    "init_std": _init_std,
    "unit": lambda layer, weight: None,
    "weight_rms": _weight_rms,
    "random_fixed": lambda layer, weight: None,
    "random_batch": lambda layer, weight: None,
}


@register_rule
class SignSymmetry(FeedbackRule):
    """B = sign(W) * M, always from the *current* W. Magnitudes M:

    - ``paper`` (default; the scale of Xiao et al. 2018's released code): sqrt(2 / (k_h k_w C_out)) for a conv
      layer (torchvision's ResNet init), 1/sqrt(fan_in) for a linear layer;
    - ``init_std``: the std of the layer's default init, 1/sqrt(3 fan_in);
    - ``unit``: 1;
    - ``weight_rms``: the current RMS of W, sqrt(sum W^2 / numel);
    - ``random_fixed`` (frSF): |R| with R drawn once (the buffer ``feedback_weight`` holds the magnitudes |R|);
    - ``random_batch`` (brSF): |R| with R redrawn at every training forward from a generator seeded by
      (seed, layer, ``feedback_step``), so draws are reproducible, resumable and identical on every rank.

    R's distribution (``random_init``): ``paper`` (default; Xiao et al. 2018's code, as fa's ``init: paper``):
    conv R ~ N(0, 2 / (k_h k_w C_out)) elementwise, so E M^2 = 2 / (k_h k_w C_out), linear R ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in)); ``uniform`` (the only choice before issue #24): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    every layer, i.e. M ~ U(0, 1/sqrt(fan_in)), whose mean is 0.44x the paper's on a 3x3 conv with C_in = C_out,
    0.63x where the channels double and 2.05x on ResNet-18's 7x7 ``conv1``.

    ``centre: true`` subtracts from each input's feedback weights their mean over the output units (dim 0 of W:
    output features, or output channels per input channel and kernel tap):

        B = (I - 1 1^T / n_out) S,   so   B^T delta = S^T (delta - 1 mean_k delta_k)

    with S = sign(W) (times |R| for frSF / brSF): the error that reaches the inputs is the deviation of each output
    unit's error from the layer's mean error at that sample (and position, for a conv) — feedback through a
    pooled inhibitory interneuron, the counterpart of DANN's subtractive forward inhibition
    ([`biocircuits.dale.dann`][biocircuits.dale.dann]). A grouped conv is centred within each group (over the C_out /
    groups outputs that read the input's group); a layer with one output per group (a depthwise conv, a one-output
    linear) would get B = 0 and is refused. It matters where sign(W)'s columns are not centred although W's are: under
    DANN, W = W_EE - W_EI W_IE starts with every column's mean over the outputs at 0 in expectation (exactly with
    ``dann.init: mean_row``), but W_EE is exponential: with ``mean_row`` 1 - 1/e = 63% of each column is negative
    (mean sign 2/e - 1 = -0.26 in every column); with the default ``paper`` init the mean sign varies by column,
    averaging -0.21 on a 64-output layer with about a quarter of the columns positive
    ([`biocircuits.dale.dann`][biocircuits.dale.dann]). Uncentred, B^T sends the layer's mean error to every input with
    gain ~0.2-0.26 n_out, which grows geometrically through a deep network (ResNet-18's ``conv1`` gets ~1e9 times bp's
    gradient at init, docs/results.md). Under column-sign Dale, sign(W)'s columns are constant, so centring leaves only
    the zeros' pattern (refused there).

    sign(W) (times |R| for frSF) is kept in the non-persistent buffer ``feedback_sign`` and rebuilt only when W
    has changed: after every optimiser step of a bound optimiser (``bc.bind``), and whenever the version counter of
    any tensor W is computed from moves (the plain weight; under DANN W_EE, W_IE and W_EI), i.e. in-place edits
    without a bound optimiser (a fused optimiser or a ``.data`` edit does not move it, so those need ``bc.bind``).
    It is built once per step and reused by every micro-batch. The scalar M is returned apart, so the layer
    multiplies whichever of B and grad_input is smaller."""

    name = "sign_symmetry"
    Options = SignSymmetryOptions
    reads_weight = True

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        magnitude = self.options.magnitude
        weight = layer.weight.detach()
        if magnitude in ("random_fixed", "random_batch"):
            magnitudes = RANDOM_INITS[self.options.random_init](weight, self.layer_seed).abs_()
            self.register_buffer(layer, "feedback_weight", magnitudes)
        if magnitude == "random_batch":
            self.register_buffer(layer, "feedback_step", torch.zeros((), dtype=torch.int64, device=weight.device))
        else:
            self.register_buffer(layer, "feedback_sign", torch.empty_like(weight), persistent=False)
        self._key: tuple | None = None
        self._scale: float | Tensor | None = None
        self._groups = int(getattr(layer, "groups", 1))
        if self.options.centre and weight.shape[0] // self._groups == 1:
            raise ConfigError(
                f"{qualname}: sign_symmetry's centre needs more than one output per group: with one, B "
                "minus its mean over the outputs is 0",
                key="feedback.options.centre",
                expected="a layer with 2+ outputs per group",
                given=f"{weight.shape[0]} outputs, groups={self._groups}",
                suggestion=f"give {qualname} its own rule in feedback.overrides (without centre)",
            )

    @classmethod
    def check_partner(cls, own: Choice, partner: Choice) -> None:
        """``centre`` is refused beside an attachment that fixes every column's sign (column-sign Dale): there
        sign(W) is constant down each column, so B minus its mean over the outputs is 0 (but for project's zeros)."""
        if own.options.centre and partner.cls.fixed_column_signs:
            raise ConfigError(
                "sign_symmetry's centre leaves no feedback under column-sign Dale: every column of "
                "sign(W) is its input's type, so B = sign(W) minus its mean over the outputs is 0 "
                "(but for project's zeros); refused for the whole spec, exempt layers included",
                key=f"{own.options_key}centre",
                expected="false with dale.architecture: column",
                given=str(own.options.centre),
                suggestion="use dale.architecture: dann, or drop centre",
            )

    def redraw(self, layer: nn.Module) -> None:
        """brSF: advance ``feedback_step`` and redraw R from (seed, layer, step) on the layer's device."""
        layer.feedback_step += 1
        seed = (self.layer_seed + 7919 * int(layer.feedback_step)) % (2**62)
        fresh = RANDOM_INITS[self.options.random_init](layer.feedback_weight, seed, device=layer.feedback_weight.device)
        with torch.no_grad():
            layer.feedback_weight.copy_(fresh.abs_())

    @classmethod
    def after_step_group(cls, members, step) -> None:
        """The optimiser has moved W: every cached sign(W) is rebuilt at the next forward (the version counter alone
        misses fused optimisers and ``.data`` edits, which do not bump it)."""
        for _, rule in members:
            rule._key = None

    @torch.no_grad()
    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Feedback:
        magnitude = self.options.magnitude
        w = weight.detach()
        if magnitude == "random_batch":
            if advance:
                self.redraw(layer)
            return self._centred(torch.sign(w).mul_(layer.feedback_weight)), None
        if torch.compiler.is_compiling():  # no version counters inside a compiled graph: build B afresh
            sign = torch.sign(w)
            return self._centred(sign.mul_(layer.feedback_weight) if magnitude == "random_fixed" else sign), SCALES[
                magnitude
            ](layer, w)
        cache = layer.feedback_sign
        key = _cache_key(layer, cache)
        if key != self._key or cache.shape != w.shape:
            if cache.shape != w.shape or cache.dtype != w.dtype:
                cache = layer.feedback_sign = torch.empty_like(w)
            torch.sign(w, out=cache)
            if magnitude == "random_fixed":
                cache.mul_(layer.feedback_weight)
            self._centred(cache)
            self._scale = SCALES[magnitude](layer, w)
            self._key = _cache_key(layer, cache)
        return cache, self._scale

    def _centred(self, feedback: Tensor) -> Tensor:
        """``centre``: subtract, in place, each input's mean feedback weight over the output units that read it (dim 0;
        for a grouped conv, the outputs of its group)."""
        if self.options.centre:
            grouped = feedback.view(self._groups, -1, *feedback.shape[1:])
            grouped.sub_(grouped.mean(1, keepdim=True))
        return feedback


def _cache_key(layer: nn.Module, cache: Tensor) -> tuple:
    """What the cached sign(W) was built from: the version counter and storage of every tensor W is computed from
    (under DANN W_EE, W_IE and W_EI: an in-place edit of the interneurons changes W too) and of the cache itself."""
    return (*((t._version, t.data_ptr()) for t in weight_sources(layer)), cache.data_ptr(), cache._version)
