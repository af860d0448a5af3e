"""The feedback-rule base class and registry: a new rule is one class in one file plus one ``@register_rule``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from biocircuits.core.interface import LayerAttachment
from biocircuits.core.interface import validate_options as _validate
from biocircuits.core.registry import Registry
from biocircuits.core.seeds import layer_seed

# What a rule returns: B (shaped like W; ``weight`` itself means B = W), and an optional scalar s with
# B_effective = s * B. The layer applies s to B or to grad_input, whichever has fewer entries.
Feedback = tuple[Tensor, float | Tensor | None]


class FeedbackRule(LayerAttachment):
    """How a converted layer builds the feedback weight B that its backward sends the error through.

    Subclasses set ``name``, ``Options`` (a pydantic model of the rule's options), ``reads_weight`` (whether
    B depends on W: weight transport of some kind), and implement
    [`feedback`][biocircuits.feedback.rules.registry.FeedbackRule.feedback]. Per-layer state lives in buffers registered
    with `register_buffer` in `attach`, so it is saved, loaded and moved with the model."""

    slot = "rule"
    reads_weight: ClassVar[bool] = False
    lazy_buffers: ClassVar[tuple[str, ...]] = ()
    """Buffers registered empty and sized when first used (an optimiser's state for B, a full DFA matrix): a
    checkpoint's tensor under such a name is loaded whatever its shape."""
    recorded_options: ClassVar[dict[str, Any]] = {}
    """Options whose values a saved config records even when left to their defaults
    (`biocircuits.config.recorded.record_defaults`), each with the value that a config saved before it was recorded
    ran with (its default then)."""

    def prepare_load(self, layer: nn.Module, state_dict: dict[str, Tensor], prefix: str) -> None:
        """Before ``layer`` loads ``state_dict``: give each of
        [`lazy_buffers`][biocircuits.feedback.rules.registry.FeedbackRule.lazy_buffers] the checkpoint's shape (empty,
        or sized by the steps the checkpoint had taken), keeping its dtype and device."""
        for name in self.lazy_buffers:
            saved, held = state_dict.get(prefix + name), getattr(layer, name, None)
            if isinstance(saved, Tensor) and isinstance(held, Tensor) and saved.shape != held.shape:
                setattr(layer, name, torch.empty(saved.shape, dtype=held.dtype, device=held.device))

    def after_load(self, layer: nn.Module, loaded: set[str]) -> None:
        """After ``layer`` and its submodules loaded a state dict that held the buffers named in ``loaded``: rebuild
        state that a plain checkpoint (one without this rule's buffers) leaves stale. Nothing by default."""

    def direct_pathway(self, layer: nn.Module) -> Callable[[Tensor, torch.Size], Tensor] | None:
        """For rules that bypass B (direct feedback alignment): ``f(delta, input_shape) -> grad_input``, called in
        the layer's backward instead of s B^T delta. None (the default) for every rule with a B."""
        return None

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor | Feedback:
        """B for the backward of the forward now running, shaped like ``weight`` (the layer's current W), or
        (B, s) with a scalar magnitude s applied by the layer. ``advance`` is true once per training forward:
        rules that redraw per batch do so then."""
        raise NotImplementedError


RULES: Registry[type[FeedbackRule]] = Registry("feedback rule")
register_rule = RULES.register
rule_class = RULES.get


def validate_options(name: str, options: dict[str, Any] | BaseModel | None, key_prefix: str = "") -> BaseModel:
    """Validate ``options`` against rule ``name``'s ``Options`` model; unknown options are errors."""
    return _validate(rule_class(name), options, f"rule {name!r}", key_prefix)


def make_rule(name: str, options: dict[str, Any] | None = None, seed: int = 0) -> FeedbackRule:
    """Build rule ``name`` with validated ``options``."""
    return rule_class(name)(validate_options(name, options), seed=seed)


def init_bound(weight: Tensor) -> float:
    """Bound of torch's default layer init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform, a=sqrt(5))."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def init_std(weight: Tensor) -> float:
    """Standard deviation of torch's default layer init: bound / sqrt(3) = 1 / sqrt(3 fan_in)."""
    return init_bound(weight) / math.sqrt(3.0)


def paper_scale(weight: Tensor) -> float:
    """The feedback scale of Xiao et al. 2018's released code: sqrt(2 / fan_out) = sqrt(2 / (k_h k_w C_out)) for
    a conv layer (torchvision's ResNet init, kaiming normal with mode fan_out), 1 / sqrt(fan_in) for a linear one."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    if weight.dim() > 2:
        return math.sqrt(2.0 / fan_out) if fan_out > 0 else 0.0
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def draw(weight: Tensor, seed: int, sample, device: torch.device | None = None) -> Tensor:
    """A tensor shaped like ``weight``, filled in float32 by ``sample(tensor, generator)`` from a generator seeded
    with ``seed`` (on the CPU unless ``device`` is given, so every device and rank gets the same numbers), then
    placed like ``weight`` (device, dtype, memory format)."""
    device = torch.device("cpu") if device is None else device
    gen = torch.Generator(device=device).manual_seed(seed)
    values = sample(torch.empty(weight.shape, dtype=torch.float32, device=device), gen)
    out = torch.empty_like(weight, memory_format=memory_format(weight))
    with torch.no_grad():
        out.copy_(values)
    return out


def draw_init_uniform(weight: Tensor, seed: int, device: torch.device | None = None) -> Tensor:
    """A tensor shaped like ``weight`` from the layer's default init distribution, drawn from a generator
    seeded with ``seed`` (on the CPU unless ``device`` is given, so every device and rank gets the same
    numbers), then placed like ``weight`` (device, dtype, memory format)."""
    bound = init_bound(weight)
    return draw(weight, seed, lambda t, gen: t.uniform_(-bound, bound, generator=gen), device)


def draw_paper(weight: Tensor, seed: int, device: torch.device | None = None) -> Tensor:
    """A tensor shaped like ``weight`` from the random feedback distribution of Xiao et al. 2018's code, drawn like
    [`draw_init_uniform`][biocircuits.feedback.rules.registry.draw_init_uniform]: a conv weight N(0, s^2) elementwise
    with s = sqrt(2 / (k_h k_w C_out)) ([`paper_scale`][biocircuits.feedback.rules.registry.paper_scale]), a linear
    weight U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    if weight.dim() == 2:
        return draw_init_uniform(weight, seed, device)
    std = paper_scale(weight)
    return draw(weight, seed, lambda t, gen: t.normal_(0.0, std, generator=gen), device)


def memory_format(t: Tensor) -> torch.memory_format:
    """The memory format ``t`` is stored in (channels_last for 4-d/5-d tensors laid out that way)."""
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d) and not t.is_contiguous():
        return torch.channels_last_3d
    return torch.contiguous_format


__all__ = [
    "RULES",
    "Feedback",
    "FeedbackRule",
    "draw",
    "draw_init_uniform",
    "draw_paper",
    "init_bound",
    "init_std",
    "layer_seed",
    "make_rule",
    "memory_format",
    "paper_scale",
    "register_rule",
    "rule_class",
    "validate_options",
]
