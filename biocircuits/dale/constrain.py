"""Applying a ``dale:`` section to a network: one type per neuron, then the Dale slot's classes
([`slot`][biocircuits.dale.slot]) the section chooses: the enforcer or architecture of every constrained layer, then the
normalisation policies."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from biocircuits.core.celltypes import assign_signs, presynaptic_units
from biocircuits.core.globs import check_patterns_match, match_any
from biocircuits.core.interface import attach
from biocircuits.core.layers import dale_layers
from biocircuits.errors import ConfigError

from .graph import UnitGraph, unit_graph
from .slot import DaleAttachment, extra_classes, layer_class


class Constrained(NamedTuple):
    """What [`constrain`][biocircuits.dale.constrain.constrain] did: the constrained and exempt layer names, the unit
    graph (None when the model was not traced) and the sign of every unit id (None with it)."""

    constrained: list[str]
    exempt: list[str]
    units: UnitGraph | None
    unit_signs: Tensor | None


def exempt_names(model: nn.Module, spec: Any) -> list[str]:
    """Layers left unconstrained: those matching ``exempt``; ``<input>`` names the first weight layer, the one
    fed by the raw (possibly negative) input."""
    layers = [n for n, _ in dale_layers(model)]
    out = [n for n in layers if match_any(n, [p for p in spec.exempt if p != "<input>"])]
    if "<input>" in spec.exempt and layers and layers[0] not in out:
        out.insert(0, layers[0])
    return out


def units_of(model: nn.Module, spec: Any) -> UnitGraph | None:
    """The unit graph for ``types: graph`` (errors propagate); for ``per_layer`` the graph when the model traces
    (the audit then reports units typed two ways), else None."""
    if spec.types == "graph":
        return unit_graph(model, spec.input_shape)
    try:
        return unit_graph(model, spec.input_shape)
    except ConfigError:
        return None


def traced(model: nn.Module, spec: Any) -> UnitGraph | None:
    """The unit graph of a model whose layers type their own inputs (DANN), for the audit's normalisation gains;
    None when it does not trace."""
    try:
        return unit_graph(model, spec.input_shape)
    except ConfigError:
        return None


def constrain(model: nn.Module, spec: Any) -> Constrained:
    """Constrain every layer that ``spec.layers`` matches and ``spec.exempt`` does not. ``spec`` is a
    [`DaleSpec`][biocircuits.config.dale_spec.DaleSpec] (any object with its fields and ``options_of``).

    Every constrained layer gets the class [`layer_class`][biocircuits.dale.slot.layer_class] chooses (the architecture,
    e.g. DANN, else the enforcer ``spec.enforce``), built with its options from ``spec`` and, when the class's layers
    read typed units (``typed_inputs``: column-sign enforcers), the signs s (+1 E / -1 I per presynaptic unit) it
    registers as ``dale_sign``: with ``types: graph`` those of the units the layer reads
    ([`graph`][biocircuits.dale.graph]: one type per neuron in every consumer); with ``per_layer``, ``assign_signs`` of
    its own input width. Then the other classes the section chooses (signed shortcuts, normalisation policies), each on
    its [`targets`][biocircuits.dale.slot.DaleAttachment.targets]."""
    layers = dale_layers(model)
    names = [n for n, _ in layers]
    check_patterns_match([p for p in spec.layers if p != "*"], names, "dale.layers", "weight layer")
    check_patterns_match([p for p in spec.exempt if p != "<input>"], names, "dale.exempt", "weight layer")
    exempt = set(exempt_names(model, spec))
    cls = layer_class(spec)
    units = units_of(model, spec) if cls.typed_inputs else traced(model, spec)
    typed = units is not None and cls.typed_inputs  # DANN: every unit E, no signs from the graph
    signs = units.signs(spec.excitatory_fraction, spec.assignment, spec.seed) if typed else None
    constrained = [(name, layer) for name, layer in layers if name not in exempt and match_any(name, spec.layers)]
    refuse_untyped_attention(cls, constrained)
    for name, layer in constrained:
        sign = layer_signs(name, layer, spec, units, signs) if cls.typed_inputs else None
        attach(layer, cls(cls.spec_options(spec), spec.seed, sign=sign), name)
    for extra in extra_classes(spec):  # signed shortcuts (they read the layers' signs), normalisation policies
        add_everywhere(extra, extra.targets(model, constrained), spec)
    return Constrained([n for n, _ in constrained], [n for n in names if n in exempt], units, signs)


def refuse_untyped_attention(cls: type, constrained: list[tuple[str, nn.Module]]) -> None:
    """A class whose layers type their own inputs (DANN) does not constrain an attention's packed in-projection: a
    ConfigError naming the first one (see [`biocircuits.dale.graph.attention`][biocircuits.dale.graph.attention])."""
    if cls.typed_inputs:
        return
    attention = [name for name, layer in constrained if isinstance(layer, nn.MultiheadAttention)]
    if attention:
        raise ConfigError(
            f"{attention[0]}: dale.architecture {cls.name} cannot constrain nn.MultiheadAttention's packed q/k/v "
            "in-projection (in_proj_weight): its interneurons would sit inside the attention's own forward, which "
            "reads the packed matrix directly",
            key="dale.architecture",
            given=cls.name,
            expected="column (an enforcer: project, abs, softplus, exp_gradient) for models with attention",
            suggestion=f"exempt the in-projections (dale.exempt: {attention!r}; their out_proj layers stay "
            f"{cls.name}) or use dale.architecture: column",
        )


def layer_signs(name: str, layer: nn.Module, spec: Any, units: UnitGraph | None, signs: Tensor | None) -> Tensor:
    """+1 E / -1 I per presynaptic unit of ``layer``: its units' signs in the unit graph with ``types: graph``;
    ``assign_signs`` of its own input width with ``per_layer`` or for a layer the forward never calls."""
    if spec.types == "graph" and units is not None and name in units.inputs:
        return signs[units.inputs[name]].clone()
    return assign_signs(presynaptic_units(layer), spec.excitatory_fraction, spec.assignment, spec.seed)


def add_everywhere(cls: type[DaleAttachment], targets: list[tuple[str, nn.Module]], spec: Any) -> None:
    """Attach a ``cls`` built from ``spec`` to every (name, module) of ``targets``."""
    options = cls.spec_options(spec)
    for name, module in targets:
        attach(module, cls(options, spec.seed), name)
