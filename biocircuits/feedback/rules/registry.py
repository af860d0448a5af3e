"""The feedback-rule base class and registry: a new rule is one class in one file plus one ``@register_rule``."""

from __future__ import annotations

import math
import zlib
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor, nn

from biocircuits.errors import ConfigError, did_you_mean


class NoOptions(BaseModel):
    """Options of a rule that takes none."""

    model_config = ConfigDict(extra="forbid")


class FeedbackRule:
    """How a converted layer builds the feedback weight B that its backward sends the error through.

    Subclasses set ``name``, ``Options`` (a pydantic model of the rule's options), ``reads_weight`` (whether
    B depends on W: weight transport of some kind), and implement :meth:`feedback`. Per-layer state lives in
    buffers that :meth:`attach` registers on the layer, so it is saved, loaded and moved with the model.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    reads_weight: ClassVar[bool] = False
    buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: BaseModel | dict[str, Any] | None = None, seed: int = 0) -> None:
        self.options = options if isinstance(options, BaseModel) else validate_options(self.name, options or {})
        self.seed = int(seed)

    def attach(self, layer: nn.Module, qualname: str) -> None:
        """Register the rule's buffers on ``layer`` (called once, at conversion)."""
        self.layer_seed = layer_seed(self.seed, qualname)

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        """B for the backward of the forward now running; shaped like ``weight`` (the layer's current W).

        ``advance`` is true once per training forward: rules that redraw per batch do so then."""
        raise NotImplementedError

    def options_dict(self) -> dict[str, Any]:
        return self.options.model_dump()

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options_dict().items())
        return f"{self.name}({opts})" if opts else self.name


RULES: dict[str, type[FeedbackRule]] = {}


def register_rule(cls: type[FeedbackRule]) -> type[FeedbackRule]:
    """Class decorator: make a rule available by its ``name`` in specs and :func:`make_rule`."""
    if cls.name in RULES:
        raise ValueError(f"feedback rule {cls.name!r} is already registered")
    RULES[cls.name] = cls
    return cls


def rule_class(name: str) -> type[FeedbackRule]:
    """The registered rule class called ``name``; a :class:`ConfigError` listing valid names otherwise."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            "unknown feedback rule", expected="one of " + ", ".join(sorted(RULES)), given=name,
            suggestion=did_you_mean(str(name), RULES),
        ) from None


def validate_options(name: str, options: dict[str, Any]) -> BaseModel:
    """Validate ``options`` against rule ``name``'s ``Options`` model; unknown options are errors."""
    cls = rule_class(name)
    if not isinstance(options, dict):
        raise ConfigError(f"options of rule {name!r} must be a mapping", expected="a mapping", given=options)
    fields = cls.Options.model_fields
    for key in options:
        if key not in fields:
            takes = ", ".join(fields) if fields else "no options"
            raise ConfigError(
                f"rule {name!r} does not take option {key!r}", expected=takes, given=key,
                suggestion=did_you_mean(key, fields), has_given=False,
            )
    try:
        return cls.Options.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"option {key!r} of rule {name!r}: {first['msg']}", given=first.get("input"),
        ) from None


def make_rule(name: str, options: dict[str, Any] | None = None, seed: int = 0) -> FeedbackRule:
    """Build rule ``name`` with validated ``options``."""
    return rule_class(name)(validate_options(name, options or {}), seed=seed)


def layer_seed(seed: int, qualname: str) -> int:
    """A per-layer seed derived from the run's seed and the layer's qualified name (stable across runs,
    processes and ranks). The pair is hashed (splitmix64 with a salt), so a feedback draw never replays the
    stream that ``torch.manual_seed(seed)`` gave the weights themselves."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + zlib.crc32(qualname.encode()) + 0xB10C1C0175) % 2**64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) % 2**64
    return (x ^ (x >> 31)) % 2**62


def init_bound(weight: Tensor) -> float:
    """Bound of torch's default layer init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform, a=sqrt(5))."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def init_std(weight: Tensor) -> float:
    """Standard deviation of torch's default layer init: bound / sqrt(3) = 1 / sqrt(3 fan_in)."""
    return init_bound(weight) / math.sqrt(3.0)


def draw_init_uniform(weight: Tensor, seed: int, device: torch.device | None = None) -> Tensor:
    """A tensor shaped like ``weight`` from the layer's default init distribution, drawn from a generator
    seeded with ``seed`` (on the CPU unless ``device`` is given, so every device and rank gets the same
    numbers), then placed like ``weight`` (device, dtype, memory format)."""
    device = torch.device("cpu") if device is None else device
    gen = torch.Generator(device=device).manual_seed(seed)
    bound = init_bound(weight)
    draw = torch.empty(weight.shape, dtype=torch.float32, device=device).uniform_(-bound, bound, generator=gen)
    out = torch.empty_like(weight, memory_format=_memory_format(weight))
    with torch.no_grad():
        out.copy_(draw)
    return out


def _memory_format(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d) and not t.is_contiguous():
        return torch.channels_last_3d
    return torch.contiguous_format
