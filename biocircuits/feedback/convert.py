"""Convert the layers of any network to feedback layers, by type (an extensible mapping, like
``torch.ao.quantization.convert(mapping=...)``) and by qualified-name patterns; and undo it."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from biocircuits.core.celltypes import populations
from biocircuits.core.globs import check_patterns_match, match_any
from biocircuits.core.interface import attachments_of, detach_all
from biocircuits.core.layers import has_transported_weight, weight_layers
from biocircuits.errors import ConfigError

from .attention import FeedbackMultiheadAttention
from .layers import FEEDBACK_CLASSES, FeedbackConvNd, FeedbackLayer
from .owners import owner_children, route, unroute
from .recurrent import RecurrentMatrix, recurrent_parameter_roles
from .rules import FeedbackRule, make_rule
from .thirdparty import third_party_classes
from .transport import parameter_rows, transport_report

Mapping_ = Mapping[type[nn.Module], type[FeedbackLayer]]


def _standard_forward(module: nn.Module, base: type[nn.Module]) -> bool:
    """True when ``module``'s class computes its output with ``base``'s own forward (nothing overridden)."""
    cls = type(module)
    return cls.forward is base.forward and getattr(cls, "_conv_forward", None) is getattr(base, "_conv_forward", None)


def feedback_class(module: nn.Module, mapping: Mapping_) -> type[FeedbackLayer] | None:
    """The feedback class for ``module``: its type's entry in ``mapping``, or the entry of a base type whose
    forward it does not override; None when it has none."""
    found = mapping.get(type(module))
    if found is None:
        found = next(
            (mapping[b] for b in type(module).__mro__[1:] if b in mapping and _standard_forward(module, b)), None
        )
    can_convert = getattr(found, "can_convert", None)
    return found if can_convert is None or can_convert(module) else None


def _owned(model: nn.Module, mapping: Mapping_) -> set[int]:
    """ids of the ``out_proj`` of every ``nn.MultiheadAttention`` that stays plain (it reads them directly)."""
    return {
        id(m.out_proj)
        for m in model.modules()
        if isinstance(m, nn.MultiheadAttention)
        and not getattr(m, "calls_out_proj", False)
        and feedback_class(m, mapping) is None
    }


def convertible_modules(model: nn.Module, mapping: Mapping_ | None = None) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every module that ``mapping`` (default: the built-in one) converts."""
    mapping = {**FEEDBACK_CLASSES, **third_party_classes()} if mapping is None else mapping
    owned = _owned(model, mapping)  # read by their owner without calling forward: not convertible alone
    return [
        (n, m)
        for n, m in model.named_modules()
        if id(m) not in owned and not isinstance(m, FeedbackLayer) and feedback_class(m, mapping) is not None
    ]


def unconvertible_modules(model: nn.Module, mapping: Mapping_) -> list[tuple[str, nn.Module]]:
    """Modules holding a weight that backprop would transport (see
    [`has_transported_weight`][biocircuits.core.layers.has_transported_weight]) but that ``mapping`` has no feedback
    class for."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if not isinstance(m, FeedbackLayer) and has_transported_weight(m) and feedback_class(m, mapping) is None
    ]


def feedback_layers(model: nn.Module) -> list[tuple[str, FeedbackLayer]]:
    """(qualified name, layer) of every converted layer, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, FeedbackLayer)]


def _rule_for(name: str, default: tuple[str, dict], overrides: Mapping[str, Any]) -> tuple[str, dict]:
    chosen = default
    for pattern, value in overrides.items():  # the last matching override wins
        if fnmatch.fnmatchcase(name, pattern):
            if isinstance(value, str):
                chosen = (value, {})
            elif isinstance(value, Mapping):
                chosen = (value["rule"], dict(value.get("options") or {}))
            else:
                chosen = (value.rule, dict(value.options))
    return chosen


def convert(
    model: nn.Module,
    rule: str = "bp",
    options: dict[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    exclude: Iterable[str] = (),
    seed: int = 0,
    mapping: Mapping_ | None = None,
) -> dict[str, FeedbackRule]:
    """Convert, in place, every layer of ``model`` that the type ``mapping`` covers (default
    ``nn.Linear`` / ``nn.Conv{1,2,3}d``, extended by the given entries; subclasses whose forward is their base's
    are covered too) to its feedback class with the default ``rule`` and ``options``, per-name ``overrides``
    (fnmatch pattern -> rule name or ``{rule, options}``; the last matching pattern wins) and ``exclude``
    patterns left as plain torch layers.

    Returns {qualified name: rule} of the converted layers. Raises [`ConfigError`][biocircuits.errors.ConfigError] for
    an unknown rule, an option a rule does not take, a pattern matching no module, a model that is already converted, or
    — when any rule is asked for whose gradient is not backprop's (not ``exact_gradient``) — a module with a
    transported weight (a ConvTranspose, an RNN, ``nn.MultiheadAttention``, a subclass with its own forward...)
    that cannot be converted and that ``exclude`` does not name: backprop would run through it silently."""
    overrides = dict(overrides or {})
    exclude = list(exclude)
    mapping = {**FEEDBACK_CLASSES, **third_party_classes(), **(mapping or {})}
    _check_not_converted(model)
    candidates = convertible_modules(model, mapping)
    stuck = unconvertible_modules(model, mapping)
    names = [n for n, _ in candidates]
    check_patterns_match(overrides, names, "feedback.overrides")
    check_patterns_match(exclude, names + [n for n, _ in stuck], "feedback.exclude")
    plan: list[tuple[str, nn.Module, FeedbackRule]] = []
    owned = {f"{n}.out_proj" for n, m in candidates if isinstance(m, nn.MultiheadAttention) and match_any(n, exclude)}
    for name, module in candidates:  # validate every rule; an excluded attention's out_proj stays plain too
        if match_any(name, exclude) or name in owned:
            continue
        rule_name, rule_options = _rule_for(name, (rule, dict(options or {})), overrides)
        plan.append((name, module, make_rule(rule_name, rule_options, seed=seed)))
    _check_no_transport_left(model, [(n, m) for n, m in stuck if not match_any(n, exclude)], plan)
    converted: dict[str, FeedbackRule] = {}
    for name, module, layer_rule in plan:
        feedback_class(module, mapping).convert(module, layer_rule, name)
        converted[name] = layer_rule
    _route_owners(model)
    return converted


def _check_not_converted(model: nn.Module) -> None:
    """Raise [`ConfigError`][biocircuits.errors.ConfigError] when ``model`` already holds feedback layers."""
    already = feedback_layers(model)
    if already:
        raise ConfigError(
            "model is already converted",
            given=already[0][0] or type(model).__name__,
            suggestion="call bc.apply once per model (bc.remove undoes it); build a fresh model to change the "
            "constraints",
            has_given=True,
        )


def _check_no_transport_left(
    model: nn.Module, stuck: list[tuple[str, nn.Module]], plan: list[tuple[str, nn.Module, FeedbackRule]]
) -> None:
    """Raise [`ConfigError`][biocircuits.errors.ConfigError] when a planned rule is not backprop's and one of the
    ``stuck`` modules (weights, no feedback class, not excluded) would still carry the error by weight transport."""
    if all(r.exact_gradient for _, _, r in plan):
        return
    stuck = _transporting(model, stuck, [(n, m) for n, m, _ in plan])
    if stuck:
        listed = ", ".join(f"{n or '(root)'} ({type(m).__name__})" for n, m in stuck[:8])
        raise ConfigError(
            "these modules carry weights that backprop would send the error through, but have no feedback class",
            key="feedback",
            given=listed + (f" and {len(stuck) - 8} more" if len(stuck) > 8 else ""),
            suggestion="add them to feedback.exclude to train them with backprop, or pass "
            "bc.apply(model, spec, mapping={TheirType: bc.nn.FeedbackLinear}) when their forward is "
            "a standard linear/conv",
            has_given=True,
        )


def _route_owners(model: nn.Module) -> None:
    """Owners that read a converted child's weight route that read through the child
    ([`owners`][biocircuits.feedback.owners])."""
    for module in model.modules():
        if any(isinstance(getattr(module, c, None), FeedbackLayer) for c in owner_children(module)):
            route(module)


def _transporting(
    model: nn.Module, stuck: list[tuple[str, nn.Module]], planned: list[tuple[str, nn.Module]]
) -> list[tuple[str, nn.Module]]:
    """The modules of ``stuck`` that transport a parameter (see [`transport`][biocircuits.feedback.transport]; all of
    them when the model cannot run on a sample), and each module that reads a planned layer's weight without calling it,
    unless it is converted itself or routes the read ([`owners`][biocircuits.feedback.owners])."""
    report = transport_report(model, planned)
    if report is None:
        return stuck
    kept = [(n, m) for n, m in stuck if report.transports(n, m)]
    converted = {n for n, _ in planned}  # a converted owner (attention) calls its children
    for name in report.read_directly:
        owner_name, _, child = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        if owner_name in converted or child in owner_children(owner) or any(n == owner_name for n, _ in kept):
            continue
        kept.append((owner_name, owner))
    return kept


@torch.no_grad()
def unconvert(model: nn.Module) -> list[str]:
    """Detach everything attached to the modules of ``model`` and give each converted module its class back
    (weights, hooks and the state_dict keys of the plain layer are kept); returns the names of the modules
    changed. The inverse of [`convert`][biocircuits.feedback.convert.convert] plus every attachment (Dale, transforms,
    plasticity)."""
    changed = [name for name, module in model.named_modules() if unroute(module)]
    for name, module in list(model.named_modules()):
        held = attachments_of(module)
        if held is None:
            continue
        plain = held.plain_class
        detach_all(module)
        module.__dict__.pop("_feedback_cast", None)
        if type(module) is not plain:
            module.__class__ = plain
        changed.append(name)
    return changed


ModuleSnapshot = list[tuple[nn.Module, type[nn.Module], dict[str, Any]]]


def snapshot_modules(model: nn.Module) -> ModuleSnapshot:
    """Every module of ``model`` with its class and a shallow copy of its attributes (parameters, buffers,
    submodules and hooks dictionaries copied, tensors shared): what
    [`restore_modules`][biocircuits.feedback.convert.restore_modules] puts back."""
    return [
        (m, type(m), {k: (v.copy() if isinstance(v, dict) else v) for k, v in m.__dict__.items()})
        for m in model.modules()
    ]


def restore_modules(snapshot: ModuleSnapshot) -> None:
    """Give every module of ``snapshot`` its class and attributes back: whatever a conversion attached, registered
    (buffers, parametrisations, hooks) or swapped is gone; the tensors are the same objects, so values changed in
    place (a signed init) need a ``load_state_dict`` of the saved values afterwards."""
    for module, cls, attributes in snapshot:
        module.__dict__.clear()
        module.__dict__.update({k: (v.copy() if isinstance(v, dict) else v) for k, v in attributes.items()})
        module.__class__ = cls


def describe(model: nn.Module, file=None) -> str:
    """A table of the model's weight layers (and converted attention): name, type, weight shape, feedback rule,
    Dale counts (presynaptic E/I units, then the layer's own interneurons: ``16E/0I + 3 interneurons``, as
    ``bc.audit`` counts them); then every other parameter with its role ([`transport`][biocircuits.feedback.transport]):
    a gain the error passes through as in backprop (LayerNorm, BatchNorm, LayerScale), a parameter that only adds to the
    activity (positional embeddings, class tokens, attention biases), or a transported one without a feedback class.
    Printed to ``file`` (default stdout) and returned."""
    rows = [("layer", "type", "weight", "rule", "dale")]
    layers = weight_layers(model)
    listed = {id(m) for _, m in layers}
    layers += [(n, m) for n, m in feedback_layers(model) if id(m) not in listed]  # attention's in-projection
    for name, m in layers:
        rule = repr(m.rule) if isinstance(m, FeedbackLayer) else "(plain torch)"
        counts = populations(m)
        dale = "-" if counts is None else str(counts)
        rows.append(
            (
                name or "(root)",
                m.describe_type() if isinstance(m, RecurrentMatrix) else type(m).__name__.replace("Parametrized", ""),
                "x".join(str(s) for s in m.weight.shape),
                rule,
                dale,
            )
        )
    roles = recurrent_parameter_roles(model)  # a converted RNN's weights learn through its listed matrices
    others = [(n, t, shape, roles.get(n, role)) for n, t, shape, role in parameter_rows(model, [n for n, _ in layers])]
    if others:
        rows += [("", "", "", "", ""), ("parameter", "type", "shape", "role", "")]
        rows += [(n, t, shape, role, "") for n, t, shape, role in others]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text, file=file)
    return text


__all__ = [
    "FeedbackConvNd",
    "FeedbackMultiheadAttention",
    "convert",
    "convertible_modules",
    "describe",
    "feedback_class",
    "feedback_layers",
    "restore_modules",
    "snapshot_modules",
    "unconvert",
    "unconvertible_modules",
]
