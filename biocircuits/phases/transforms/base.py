"""The error-transform base class and registry, and the error pathway that runs a layer's transforms.

An error transform perturbs the learning signal of a converted layer in one of two places:

- on the error delta = dL/dy arriving at the layer's output, before the layer's backward sends it down
  ([`ErrorTransform.on_error`][biocircuits.phases.transforms.base.ErrorTransform.on_error]; noise, quantisation);
- on the layer's gradients, between backward and the optimiser step (``before_step``; delays, traces).

Every transform of a layer that acts on delta runs in one backward hook, the
[`ErrorPathway`][biocircuits.phases.transforms.base.ErrorPathway]: it advances the layer's ``phase_step`` counter once
per backward and hands every transform the same generator, seeded by (phases seed, layer name, ``phase_step``), so runs
resume exactly and every DDP rank draws the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocircuits.core.interface import LayerAttachment, attachments_of
from biocircuits.core.registry import Registry
from biocircuits.core.seeds import step_seed


class ErrorTransform(LayerAttachment):
    """Base class of error-pathway transforms (``phases:`` keys). ``shorthand`` names the option that a scalar
    value in a spec sets (``error_noise: 0.1`` means ``error_noise: {sigma: 0.1}``); a transform whose
    shorthand option is 0 (or false) is off and attaches nothing."""

    slot = "transform"
    shorthand: ClassVar[str | None] = None
    spec_key: ClassVar[bool] = True  # a key of ``phases:`` (False: set through other keys, e.g. backward_state)

    def on_error(self, layer: nn.Module, delta: Tensor, generator: torch.Generator, rows: slice | None) -> Tensor:
        """The error the layer's backward uses instead of ``delta`` (shape of the layer's output); ``rows`` are
        the stream rows of the forward pass that made it (None outside a training forward: see
        [`biocircuits.phases.transforms.streams`][biocircuits.phases.transforms.streams])."""
        return delta

    @classmethod
    def acts_on_error(cls) -> bool:
        return cls.on_error is not ErrorTransform.on_error

    @classmethod
    def expand(cls, value: Any) -> dict[str, Any]:
        """A spec value as an options mapping (a scalar is the ``shorthand`` option; None or false is off)."""
        if isinstance(value, dict):
            return value
        if cls.shorthand is None:
            return {} if value in (None, True) else {"enabled": value}
        return {cls.shorthand: value}

    @classmethod
    def variant(cls, options: Any) -> type[ErrorTransform]:
        """The class that carries out these (validated) options: ``cls`` itself unless an option picks another
        form (``error_filter: {cascade: false}`` filters once at the model's output)."""
        return cls

    @classmethod
    def active(cls, options: Any) -> bool:
        """False when the options turn the transform off (its shorthand option is 0 / false)."""
        return cls.shorthand is None or bool(getattr(options, cls.shorthand))

    @classmethod
    def acting_class(cls, phases: Any) -> type[ErrorTransform]:
        """The class that acts for this ``phases:`` key given the rest of the section ``phases`` (itself; another
        when a setting changes what the key means, e.g. ``error_delay`` under ``backward_state: current``)."""
        return cls

    @classmethod
    def implied_by(cls, phases: Any) -> dict[str, Any] | None:
        """The options of this transform when other settings of the section ``phases`` imply it (not a key of its
        own); None when they do not (the default)."""
        return None

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        if type(self).acts_on_error():
            ErrorPathway.install(layer, self)


TRANSFORMS: Registry[type[ErrorTransform]] = Registry("error transform")


class ErrorPathway:
    """The backward hook on a converted layer's output: ``phase_step += 1``, one generator, then every transform
    of the layer that acts on delta, in their ``order``. [`hook`][biocircuits.phases.transforms.base.ErrorPathway.hook]
    binds the stream rows of the forward pass that made the output."""

    def __init__(self, layer: nn.Module, seed: int) -> None:
        self.layer = layer
        self.seed = seed
        self.transforms: list[ErrorTransform] = []

    @staticmethod
    def install(layer: nn.Module, transform: ErrorTransform) -> None:
        held = attachments_of(layer)
        if held.error_pathway is None:
            transform.register_buffer(
                layer, "phase_step", torch.zeros((), dtype=torch.int64, device=layer.weight.device)
            )
            held.error_pathway = ErrorPathway(layer, transform.layer_seed)
        held.error_pathway.transforms.append(transform)
        held.error_pathway.transforms.sort(key=lambda t: type(t).order)

    def hook(self, rows: slice | None) -> Callable[[Tensor], Tensor]:
        """The tensor hook for an output made by a forward pass over stream rows ``rows``."""
        return lambda delta: self(delta, rows)

    @torch.no_grad()
    def __call__(self, delta: Tensor, rows: slice | None = None) -> Tensor:
        self.layer.phase_step += 1
        gen = torch.Generator(device=delta.device).manual_seed(step_seed(self.seed, int(self.layer.phase_step)))
        for transform in self.transforms:
            delta = transform.on_error(self.layer, delta, gen, rows)
        return delta
