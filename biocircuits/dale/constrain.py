"""Applying a ``dale:`` section to a network: signs per presynaptic unit, initialisation, enforcement."""

from __future__ import annotations

from torch import nn

from biocircuits.config.constraints import DaleSpec
from biocircuits.feedback.convert import check_patterns_match, match_any
from biocircuits.feedback.layers import FEEDBACK_CLASSES, FeedbackLayer

from .enforce import ENFORCERS
from .init import initialise
from .populations import assign_signs, presynaptic_units
from .residual import sign_shortcuts


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Linear and conv layers (plain or converted), in module order."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, FeedbackLayer) or type(m) in FEEDBACK_CLASSES]


def exempt_names(model: nn.Module, spec: DaleSpec) -> list[str]:
    """Layers left unconstrained: those matching ``exempt``; ``<input>`` names the first weight layer, the one
    fed by the raw (possibly negative) input."""
    layers = [n for n, _ in weight_layers(model)]
    out = [n for n in layers if match_any(n, [p for p in spec.exempt if p != "<input>"])]
    if "<input>" in spec.exempt and layers and layers[0] not in out:
        out.insert(0, layers[0])
    return out


def constrain(model: nn.Module, spec: DaleSpec) -> tuple[list[str], list[str]]:
    """Give each constrained layer the buffer ``dale_sign`` (+1 E / -1 I per presynaptic unit), its weights
    their unit's sign (``init``), and the chosen enforcement; returns (constrained, exempt) layer names."""
    layers = weight_layers(model)
    names = [n for n, _ in layers]
    check_patterns_match([p for p in spec.layers if p != "*"], names, "dale.layers")
    check_patterns_match([p for p in spec.exempt if p != "<input>"], names, "dale.exempt")
    exempt = set(exempt_names(model, spec))
    constrained = []
    for name, layer in layers:
        if name in exempt or not match_any(name, spec.layers):
            continue
        n = presynaptic_units(layer)
        sign = assign_signs(n, spec.excitatory_fraction, spec.assignment, spec.seed)
        layer.register_buffer("dale_sign", sign.to(layer.weight.device, layer.weight.dtype), persistent=True)
        layer.dale_enforce = spec.enforce
        initialise(layer, spec.init)
        ENFORCERS[spec.enforce](layer)
        constrained.append(name)
    if spec.residual == "signed":
        sign_shortcuts(model)
    return constrained, [n for n in names if n in exempt]
