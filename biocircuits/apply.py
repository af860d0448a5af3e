"""``bc.apply(model, spec)``: convert any network in place so it learns under a constraint spec; ``bc.remove``
undoes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from biocircuits.config.constraints import Constraints
from biocircuits.core.interface import attach_groups
from biocircuits.core.layers import unwrap, weight_layers
from biocircuits.dale.constrain import Constrained, constrain
from biocircuits.dale.graph import UnitGraph
from biocircuits.errors import ConfigError
from biocircuits.feedback.convert import convert, feedback_layers, restore_modules, snapshot_modules, unconvert
from biocircuits.feedback.layers import FeedbackLayer
from biocircuits.feedback.rules import FeedbackRule
from biocircuits.phases.attach import attach_transforms
from biocircuits.plasticity.attach import attach_plasticity
from biocircuits.recurrent.masks import keep_self_mask
from biocircuits.recurrent.phases import attach_in_time


@dataclass
class ConstraintsState:
    """What [`apply`][biocircuits.apply.apply] did to a model (kept on it as ``model.biocircuits``): the spec, the rule
    of each converted layer, the Dale-constrained and exempt layers, and the optimisers bound to it."""

    spec: Constraints
    rules: dict[str, FeedbackRule]
    dale_layers: list[str] = field(default_factory=list)
    exempt: list[str] = field(default_factory=list)
    bindings: list[Any] = field(default_factory=list)
    dale_units: UnitGraph | None = None
    unit_signs: Tensor | None = None


def apply(
    model: nn.Module,
    spec: Constraints | dict | str | Path | None = None,
    *,
    mapping: Mapping[type[nn.Module], type[FeedbackLayer]] | None = None,
) -> nn.Module:
    """Convert ``model`` in place under ``spec`` (a [`Constraints`][biocircuits.config.constraints.Constraints], a
    mapping, or a YAML path) and return it.

    1. ``feedback``: every layer the type ``mapping`` covers (``nn.Linear``, ``nn.Conv{1,2,3}d`` and their
       subclasses with the standard forward, plus the given entries) becomes its feedback class with the rule
       given by the default, ``overrides`` and ``exclude``;
    2. ``dale``: the enforcer ``dale.enforce`` is attached to each constrained layer (``dale_sign``, signed init);
    3. ``phases``: the active error transforms are attached to each converted layer;
    4. ``plasticity``: each rule is attached to the layers it matches.
    Their hooks run at the optimiser: see [`biocircuits.bind`][biocircuits.core.binding.bind]."""
    spec = Constraints.coerce(spec)
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise ConfigError(
            "apply the constraints before wrapping the model in DistributedDataParallel", given=type(model).__name__
        )
    if getattr(model, "biocircuits", None) is not None:
        raise ConfigError(
            "model is already converted",
            given=type(model).__name__,
            suggestion="call bc.apply once per model (bc.remove undoes it)",
            has_given=True,
        )
    fb = spec.feedback
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}  # Dale's signed init changes weights
    modules = snapshot_modules(model)  # classes, parameters, buffers, submodules, hooks
    try:
        rules = convert(
            model, fb.rule, fb.options, overrides=fb.overrides, exclude=fb.exclude, seed=fb.seed, mapping=mapping
        )
        dale = constrain(model, spec.dale) if spec.dale_on else Constrained([], [], None, None)
        keep_self_mask(model)  # no self-connections under a reparametrised Dale W_rec
        if not attach_in_time(model, spec.phases):  # a recurrent model's phases act in time, within its trials
            attach_transforms(model, feedback_layers(model), spec.phases.transforms(), spec.phases.seed)
        attach_plasticity(model, weight_layers(model), spec.plasticity, dale.units, dale.unit_signs, spec.dale_on)
        attach_groups(model)
    except BaseException as err:  # leave the model exactly as it was, whatever failed (even half-way through a layer)
        restore_modules(modules)
        model.load_state_dict(saved)
        if isinstance(err, ConfigError):
            raise err.with_file(spec.source) from None
        raise
    object.__setattr__(
        model,
        "biocircuits",
        ConstraintsState(spec, rules, dale.constrained, dale.exempt, dale_units=dale.units, unit_signs=dale.unit_signs),
    )
    return model


def remove(model: nn.Module) -> nn.Module:
    """Undo [`apply`][biocircuits.apply.apply] in place, like ``torch.nn.utils.parametrize.remove_parametrizations``:
    every layer gets its torch class back with its current weights (a Dale reparametrisation is folded into a plain
    weight), every attachment's buffers are dropped (the state_dict keys are the plain model's), and the optimisers
    bound to the model lose their hooks. What computed part of the function is kept: a DANN layer's W = W_EE - W_EI W_IE
    as the plain weight, and, as forward hooks on the plain layer holding copies of what they read, the population
    norm's division ([`PopulationDivision`][biocircuits.dale.population_norm.PopulationDivision]) and divisive DANN
    inhibition ([`DivisiveInhibition`][biocircuits.dale.dann.DivisiveInhibition]): the eval outputs are the converted
    model's. Returns the same module."""
    module = unwrap(model)
    state = constraints_of(module)
    for binding, optimizer in state.bindings:
        binding.remove(optimizer)
    unconvert(module)
    del module.__dict__["biocircuits"]
    return module


def constraints_of(model: nn.Module) -> ConstraintsState:
    """The [`ConstraintsState`][biocircuits.apply.ConstraintsState] of a converted model; an error naming
    [`apply`][biocircuits.apply.apply] otherwise."""
    module = unwrap(model)
    state = getattr(module, "biocircuits", None)
    if state is None:
        raise ConfigError(
            "model has not been converted",
            given=type(module).__name__,
            suggestion="call bc.apply(model, spec) first",
            has_given=True,
        )
    return state
