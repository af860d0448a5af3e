"""Applying a ``dale:`` section to a network: signs per presynaptic unit, initialisation, enforcement."""

from __future__ import annotations

from typing import Any

from torch import nn

from biocircuits.core.celltypes import assign_signs, presynaptic_units
from biocircuits.core.globs import check_patterns_match, match_any
from biocircuits.core.interface import attach
from biocircuits.core.layers import weight_layers

from .enforcers import ENFORCERS
from .norms import NORM_GAMMA
from .population_norm import POPULATION_NORMS
from .residual import sign_shortcuts


def exempt_names(model: nn.Module, spec: Any) -> list[str]:
    """Layers left unconstrained: those matching ``exempt``; ``<input>`` names the first weight layer, the one
    fed by the raw (possibly negative) input."""
    layers = [n for n, _ in weight_layers(model)]
    out = [n for n in layers if match_any(n, [p for p in spec.exempt if p != "<input>"])]
    if "<input>" in spec.exempt and layers and layers[0] not in out:
        out.insert(0, layers[0])
    return out


def constrain(model: nn.Module, spec: Any) -> tuple[list[str], list[str]]:
    """Attach the enforcer ``spec.enforce`` (from ``ENFORCERS``) to each constrained layer: it registers the
    buffer ``dale_sign`` (+1 E / -1 I per presynaptic unit), gives the weights their unit's sign (``spec.init``)
    and keeps them so. ``spec`` is a :class:`~biocircuits.config.constraints.DaleSpec` (any object with its
    fields). Then ``spec.residual`` signs the identity shortcuts, ``spec.norm_gamma`` (``NORM_GAMMA``) decides
    whether normalisation layers keep gamma >= 0 (:mod:`biocircuits.dale.norms`) and ``spec.population_norm``
    (``POPULATION_NORMS``) whether each constrained layer's input is divided by its populations' mean activity
    (:mod:`biocircuits.dale.population_norm`). Returns (constrained, exempt) layer names."""
    layers = weight_layers(model)
    names = [n for n, _ in layers]
    check_patterns_match([p for p in spec.layers if p != "*"], names, "dale.layers", "weight layer")
    check_patterns_match([p for p in spec.exempt if p != "<input>"], names, "dale.exempt", "weight layer")
    enforcer = ENFORCERS.get(spec.enforce)
    exempt = set(exempt_names(model, spec))
    constrained = []
    for name, layer in layers:
        if name in exempt or not match_any(name, spec.layers):
            continue
        sign = assign_signs(presynaptic_units(layer), spec.excitatory_fraction, spec.assignment, spec.seed)
        attach(layer, enforcer(sign, spec.init, spec.seed), name)
        constrained.append(name)
    if spec.residual == "signed":
        sign_shortcuts(model)
    NORM_GAMMA.get(getattr(spec, "norm_gamma", "free"))(model)
    POPULATION_NORMS.get(getattr(spec, "population_norm", "none"))(model, constrained)
    return constrained, [n for n in names if n in exempt]
