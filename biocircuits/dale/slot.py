"""The Dale slot: everything Dale's law attaches to a network is one registered
[`DaleAttachment`][biocircuits.dale.slot.DaleAttachment] in ``DALE``.

A ``dale:`` spec section chooses its classes by value, one key each ([`SPEC_KEYS`][biocircuits.dale.slot.SPEC_KEYS]):

    architecture      an architecture that replaces the enforcer (dann); ``column``: none, the enforcer acts
    enforce           the column-sign enforcer of every constrained layer (project, abs, softplus, exp_gradient)
    residual          identity shortcuts carrying their units' signs (signed); ``identity``: none
    norm_gamma        a policy on normalisation layers' gains (nonnegative); ``free``: none
    population_norm   a normalisation of each constrained layer's input (divisive); ``none``: none

A class declares the key that chooses it (``spec_key``) and the value (``choice``, default its ``name``), its
``Options``, the layers it goes to ([`DaleAttachment.targets`][biocircuits.dale.slot.DaleAttachment.targets]) and what
the audit, plasticity and the spec's cross-checks ask of it
([`population_counts`][biocircuits.dale.slot.DaleAttachment.population_counts],
[`count_violations`][biocircuits.dale.slot.DaleAttachment.count_violations],
[`effective_violations`][biocircuits.dale.slot.DaleAttachment.effective_violations],
[`pooled_units`][biocircuits.dale.slot.DaleAttachment.pooled_units],
[`audit_notes`][biocircuits.dale.slot.DaleAttachment.audit_notes], ``growth_sign`` and ``synapse_tensors`` of
[`LayerAttachment`][biocircuits.core.interface.LayerAttachment], ``check_partner``). A new architecture is one such
class: its options come from the ``dale:`` key of its name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import Populations, column_populations, sign_mask
from biocircuits.core.interface import LayerAttachment
from biocircuits.core.registry import Registry

from .effective import effective_count


class DaleAttachment(LayerAttachment):
    """Base class of the Dale slot. ``sign`` (+1 E / -1 I per presynaptic unit of the layer it attaches to) is
    given to classes with ``typed_inputs`` (their layers read units typed through the unit graph); the others type
    their own inputs (DANN: all excitatory) or act on other modules (normalisation layers)."""

    slot = "dale"
    spec_key: ClassVar[str]  # the ``dale:`` key whose value chooses this class
    choice: ClassVar[str | None] = None  # that value (None: ``name``)
    typed_inputs: ClassVar[bool] = False  # the constrained layers' inputs carry the unit graph's E/I types

    def __init__(self, options: Any = None, seed: int = 0, sign: Tensor | None = None) -> None:
        super().__init__(options, seed)
        self.sign = sign

    @classmethod
    def choice_name(cls) -> str:
        return cls.choice or cls.name

    @classmethod
    def spec_options(cls, spec: Any) -> Any:
        """This class's options from the ``dale:`` section ``spec`` (by default the mapping under its name)."""
        return spec.options_of(cls.name)

    @classmethod
    def targets(cls, model: nn.Module, constrained: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
        """(name, module) of what it attaches to: by default every constrained layer."""
        return constrained

    # --- what the audit reads -------------------------------------------------------------------------------------
    def population_counts(self, layer: nn.Module) -> Populations:
        """(E, I) presynaptic units of ``layer`` and its interneurons (none here)."""
        return column_populations(layer)

    @torch.no_grad()
    def count_violations(self, layer: nn.Module) -> int:
        """Weights whose sign breaks Dale: s_j W_ij < 0 (s broadcast over the input dimension)."""
        return column_violations(layer)

    def effective_violations(self, layer: nn.Module, gain: Tensor | None) -> int:
        """The same for the effective weights, with ``gain`` (per output unit, of the normalisation that follows
        the layer) folded in: sign(W[o, ...] gain_o)."""
        return effective_count(layer, gain)

    def pooled_units(self, layer: nn.Module) -> int:
        """Inhibitory units it adds per sample and position that read the layer's input (a population pool); 0."""
        return 0

    def audit_notes(self, layer: nn.Module, qualname: str) -> list[str]:
        """Lines the audit adds to its leaks for this layer (none by default)."""
        return []


@torch.no_grad()
def column_violations(layer: nn.Module) -> int:
    return int(((layer.weight * sign_mask(layer)) < 0).sum())


DALE: Registry[type[DaleAttachment]] = Registry("Dale attachment")


def _choices(key: str, kind: str, off: str | None) -> Registry:
    """The DALE classes that ``dale.<key>`` chooses, by their choice names; ``off`` (no class) maps to None."""
    return DALE.view(
        kind, lambda cls: cls.choice_name() if cls.spec_key == key else None, {off: None} if off is not None else None
    )


# the dale: keys that choose attachments, in the order their classes attach (per-layer ones first)
SPEC_KEYS: dict[str, Registry] = {
    "architecture": _choices("architecture", "Dale architecture", "column"),
    "enforce": _choices("enforce", "Dale enforcer", None),
    "residual": _choices("residual", "Dale residual", "identity"),
    "norm_gamma": _choices("norm_gamma", "Dale norm_gamma policy", "free"),
    "population_norm": _choices("population_norm", "Dale population_norm", "none"),
}
ENFORCERS = SPEC_KEYS["enforce"]
LAYER_KEYS = ("architecture", "enforce")  # the first of these that chooses a class types every layer


def chosen(spec: Any, key: str) -> type[DaleAttachment] | None:
    """The class ``spec.<key>`` names (None for the key's off value)."""
    return SPEC_KEYS[key].get(getattr(spec, key))


def layer_class(spec: Any) -> type[DaleAttachment]:
    """The class every constrained layer gets: the architecture, else the enforcer."""
    return next(cls for key in LAYER_KEYS if (cls := chosen(spec, key)) is not None)


def extra_classes(spec: Any) -> list[type[DaleAttachment]]:
    """The classes the other keys choose (signed shortcuts, normalisation policies), in
    [`SPEC_KEYS`][biocircuits.dale.slot.SPEC_KEYS] order."""
    return [cls for key in SPEC_KEYS if key not in LAYER_KEYS and (cls := chosen(spec, key)) is not None]
