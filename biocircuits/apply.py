"""``bc.apply(model, spec)``: convert any network in place so it learns under a constraint spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from biocircuits.config.constraints import Constraints
from biocircuits.dale.constrain import constrain, weight_layers
from biocircuits.errors import ConfigError
from biocircuits.feedback.convert import convert
from biocircuits.feedback.rules import FeedbackRule
from biocircuits.phases.perturb import GradientPhases, attach_perturbations


@dataclass
class ConstraintsState:
    """What :func:`apply` did to a model (kept on it as ``model.biocircuits``)."""

    spec: Constraints
    rules: dict[str, FeedbackRule]
    dale_layers: list[str] = field(default_factory=list)
    exempt: list[str] = field(default_factory=list)
    weight_layers: list[tuple[str, nn.Module]] = field(default_factory=list)
    gradient_phases: GradientPhases | None = None


def apply(model: nn.Module, spec: Constraints | dict | str | Path | None = None) -> nn.Module:
    """Convert ``model`` in place under ``spec`` (a :class:`Constraints`, a mapping, or a YAML path) and return it.

    1. ``feedback``: every Linear/Conv{1,2,3}d becomes its feedback class with the rule given by the
       default, ``overrides`` and ``exclude``;
    2. ``dale``: constrained layers get ``dale_sign``, their weights their unit's sign, and the enforcement;
    3. ``phases``: error-pathway perturbations are attached to each converted layer.
    Plasticity and Dale projection act at the optimiser: see :func:`biocircuits.bind`."""
    spec = Constraints.coerce(spec)
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise ConfigError("apply the constraints before wrapping the model in DistributedDataParallel",
                          given=type(model).__name__)
    if getattr(model, "biocircuits", None) is not None:
        raise ConfigError("model is already converted", given=type(model).__name__,
                          suggestion="call bc.apply once per model", has_given=True)
    fb = spec.feedback
    try:
        rules = convert(model, fb.rule, fb.options, overrides=fb.overrides, exclude=fb.exclude, seed=fb.seed)
        dale_layers, exempt = constrain(model, spec.dale) if spec.dale_on else ([], [])
    except ConfigError as err:
        raise err.with_file(spec.source) from None
    state = ConstraintsState(spec, rules, dale_layers, exempt, weight_layers(model))
    state.gradient_phases = attach_perturbations(model, spec.phases)
    object.__setattr__(model, "biocircuits", state)  # plain attribute: not a submodule, not in state_dict
    return model


def constraints_of(model: nn.Module) -> ConstraintsState:
    """The :class:`ConstraintsState` of a converted model; an error naming :func:`apply` otherwise."""
    module = getattr(model, "module", model)
    state = getattr(module, "biocircuits", None)
    if state is None:
        raise ConfigError("model has not been converted", given=type(module).__name__,
                          suggestion="call bc.apply(model, spec) first", has_given=True)
    return state
