"""Attaching a ``plasticity:`` section's rules to the synapses they match."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.celltypes import cell_types, synapse_mask
from biocircuits.core.globs import check_patterns_match, match_any
from biocircuits.core.interface import attach, attachments_of
from biocircuits.core.layers import weight_shape
from biocircuits.errors import ConfigError

from .rules import PLASTICITY, BatchManhattan


def post_signs(name: str, layer: nn.Module, units: Any, unit_signs: Tensor | None) -> Tensor | None:
    """The type (+1 E / -1 I) of each output unit of ``layer``: its units' signs in the unit graph
    ([`biocircuits.dale.graph`][biocircuits.dale.graph]); None if unknown."""
    if units is None or unit_signs is None or name not in units.outputs:
        return None
    return unit_signs[units.outputs[name]].clone()


def synapse_tensors(layer: nn.Module) -> list[tuple[str, str, str]] | None:
    """(parameter path, presynaptic type, postsynaptic type) of each tensor of a layer whose Dale attachment keeps
    its synapse classes in separate tensors (its ``synapse_tensors``: DANN's W_EE, W_IE, W_EI); None otherwise."""
    held = attachments_of(layer)
    dale = held.dale if held is not None else None
    return dale.synapse_tensors(layer) if dale is not None else None


def synapse_count(layer: nn.Module, mask: Tensor | None) -> int:
    """Weights of ``layer`` that ``mask`` (broadcastable to the weight) selects; all of them for None."""
    shape = weight_shape(layer)
    return int(torch.Size(shape).numel()) if mask is None else int(mask.expand(shape).sum())


def attach_plasticity(
    model: nn.Module,
    layers: Sequence[tuple[str, nn.Module]],
    spec: Any,
    units: Any = None,
    unit_signs: Tensor | None = None,
    dale_on: bool = False,
) -> int:
    """Attach each rule of ``spec.rules`` (a [`PlasticitySpec`][biocircuits.config.constraints.PlasticitySpec]) to the
    layers whose name its glob matches, restricted to its synapse class (presynaptic ``population``, postsynaptic
    ``post``; types need Dale: the presynaptic type is the layer's ``dale_sign``, the postsynaptic one the type of
    the output unit in ``units``, the unit graph, with ``unit_signs`` per unit id). A layer's rules keep spec order;
    a rule that changes nothing is not attached. Errors: a typed rule without Dale; a rule matching no synapse
    (naming the closest layers). With ``spec.update == "batch_manhattan"`` attach
    [`BatchManhattan`][biocircuits.plasticity.rules.batch_manhattan.BatchManhattan] to ``model`` itself. Returns the
    number of attachments made."""
    names = [n for n, _ in layers]
    made = 0
    for i, row in enumerate(spec.rules):
        key, match = f"plasticity.rules[{i}].match", row.match
        typed = match.population != "any" or match.post != "any"
        if typed and not dale_on:
            raise ConfigError(
                "a rule matching cell types needs Dale's law (there are no E or I units without it)",
                key=key,
                given=f"{match.population}->{match.post}",
                suggestion="add a dale: section, or match population: any and post: any",
            )
        check_patterns_match([match.layers], names, f"{key}.layers", "weight layer")
        cls, options = PLASTICITY.get(row.rule), row.rule_options()
        matched, candidates = 0, []
        for name, layer in layers:
            if not match_any(name, [match.layers]):
                continue
            if typed and cell_types(layer) is None:
                continue  # types exist only in Dale-constrained layers
            post = post_signs(name, layer, units, unit_signs) if match.post != "any" else None
            if match.post != "any" and post is None and synapse_tensors(layer) is None:
                raise ConfigError(
                    f"{name}: the types of this layer's output units are unknown",
                    key=f"{key}.post",
                    given=match.post,
                    suggestion="use dale.types: graph (a traceable model)",
                )
            candidates.append(name)
            synapses, attached = _attach_rule(name, layer, cls, options, match, post)
            matched += synapses
            made += attached
        if matched == 0:
            raise ConfigError(
                f"rule matches no synapse ({match.population}->{match.post} in layers {match.layers!r})",
                key=key,
                given=match.layers,
                suggestion=_closest(match.layers, candidates, layers),
            )
    if spec.update == "batch_manhattan":
        attach(model, BatchManhattan(), "")
        made += 1
    return made


def _attach_rule(
    name: str, layer: nn.Module, cls: type, options: Any, match: Any, post: Tensor | None
) -> tuple[int, int]:
    """Attach one rule (class ``cls``, ``options``) to the synapses of ``layer`` in its ``match``'s class (``post``:
    the output units' types, or None): (synapses matched, attachments made; none for a rule that changes nothing)."""
    tensors = synapse_tensors(layer)
    if tensors is not None:  # a layer whose synapse classes are separate tensors (DANN)
        matched = made = 0
        for target, pre, post_type in tensors:
            if match.population in ("any", pre) and match.post in ("any", post_type):
                # "weight" is the layer's trainable weight (W_EE: a parametrisation's original)
                matched += synapse_count(layer, None) if target == "weight" else layer.get_parameter(target).numel()
                if not cls.changes_nothing(cls(options).options):
                    attach(layer, cls(options, target=target), name)
                    made += 1
        return matched, made
    count = synapse_count(layer, synapse_mask(layer, match.population, match.post, post))
    if count == 0 or cls.changes_nothing(cls(options).options):
        return count, 0
    attach(layer, cls(options, population=match.population, post=match.post, post_sign=post), name)
    return count, 1


def _closest(pattern: str, candidates: list[str], layers: Sequence[tuple[str, nn.Module]]) -> str:
    typed = [n for n, m in layers if cell_types(m) is not None]
    close = difflib.get_close_matches(pattern, typed, n=3, cutoff=0.3) or typed[:3]
    seen = (
        f"the glob matches {', '.join(candidates[:5])} with no such synapse; "
        if candidates
        else "the glob matches only layers without Dale types; "
    )
    return seen + ("closest Dale layers: " + ", ".join(close) if close else "no layer has Dale types")
