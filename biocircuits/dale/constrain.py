"""Applying a ``dale:`` section to a network: one type per neuron, initialisation, enforcement (column-sign
layers) or interneuron layers (DANN)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from biocircuits.core.celltypes import assign_signs, presynaptic_units
from biocircuits.core.globs import check_patterns_match, match_any
from biocircuits.core.interface import attach
from biocircuits.core.layers import weight_layers
from biocircuits.errors import ConfigError

from .dann import Dann
from .enforcers import ENFORCERS
from .graph import UnitGraph, unit_graph
from .norms import NORM_GAMMA
from .population_norm import POPULATION_NORMS
from .residual import sign_shortcuts


class Constrained(NamedTuple):
    """What :func:`constrain` did: the constrained and exempt layer names, the unit graph (None when the model
    was not traced) and the sign of every unit id (None with it)."""

    constrained: list[str]
    exempt: list[str]
    units: UnitGraph | None
    unit_signs: Tensor | None


def exempt_names(model: nn.Module, spec: Any) -> list[str]:
    """Layers left unconstrained: those matching ``exempt``; ``<input>`` names the first weight layer, the one
    fed by the raw (possibly negative) input."""
    layers = [n for n, _ in weight_layers(model)]
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


def constrain(model: nn.Module, spec: Any) -> Constrained:
    """Constrain every layer that ``spec.layers`` matches and ``spec.exempt`` does not. ``spec`` is a
    :class:`~biocircuits.config.constraints.DaleSpec` (any object with its fields).

    ``architecture: column``: attach the enforcer ``spec.enforce`` (from ``ENFORCERS``), which registers the buffer
    ``dale_sign`` (+1 E / -1 I per presynaptic unit), gives the weights their unit's sign (``spec.init``) and keeps
    them so. With ``types: graph`` a layer's signs are those of the units it reads (:mod:`.graph`: one type per
    neuron in every consumer); with ``per_layer``, ``assign_signs`` of its own input width.
    ``architecture: dann``: attach :class:`~biocircuits.dale.dann.Dann` (every input E; interneurons inside)."""
    layers = weight_layers(model)
    names = [n for n, _ in layers]
    check_patterns_match([p for p in spec.layers if p != "*"], names, "dale.layers", "weight layer")
    check_patterns_match([p for p in spec.exempt if p != "<input>"], names, "dale.exempt", "weight layer")
    exempt = set(exempt_names(model, spec))
    dann = spec.architecture == "dann"
    units = None if dann else units_of(model, spec)
    signs = units.signs(spec.excitatory_fraction, spec.assignment, spec.seed) if units is not None else None
    enforcer = ENFORCERS.get(spec.enforce)
    constrained = []
    for name, layer in layers:
        if name in exempt or not match_any(name, spec.layers):
            continue
        if dann:
            attach(layer, Dann(spec.dann, spec.seed), name)
        else:
            if spec.types == "graph" and units is not None and name in units.inputs:
                sign = signs[units.inputs[name]].clone()
            else:   # per_layer, or a layer the forward never calls
                sign = assign_signs(presynaptic_units(layer), spec.excitatory_fraction, spec.assignment, spec.seed)
            attach(layer, enforcer(sign, spec.init, spec.seed), name)
        constrained.append(name)
    if spec.residual == "signed":
        sign_shortcuts(model)
    NORM_GAMMA.get(getattr(spec, "norm_gamma", "free"))(model)
    POPULATION_NORMS.get(getattr(spec, "population_norm", "none"))(model, constrained)
    return Constrained(constrained, [n for n in names if n in exempt], units, signs)
