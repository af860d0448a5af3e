"""Convert the layers of any network to feedback layers, by type and by qualified-name patterns."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from biocircuits.errors import ConfigError

from .layers import FEEDBACK_CLASSES, FeedbackLayer
from .rules import FeedbackRule, make_rule


def convertible_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every module whose exact type has a feedback class."""
    return [(name, m) for name, m in model.named_modules() if type(m) in FEEDBACK_CLASSES]


def feedback_layers(model: nn.Module) -> list[tuple[str, FeedbackLayer]]:
    """(qualified name, layer) of every converted layer, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, FeedbackLayer)]


def match_any(name: str, patterns: Iterable[str]) -> bool:
    """True when ``name`` matches one of the fnmatch ``patterns``."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def check_patterns_match(patterns: Iterable[str], names: list[str], key: str) -> None:
    """Raise a :class:`ConfigError` naming the closest module names for a pattern that matches nothing."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4)
            hint = ("closest module names: " + ", ".join(close)) if close else (
                "module names look like: " + ", ".join(names[:5]))
            raise ConfigError("pattern matches no convertible module", key=key, given=pattern, suggestion=hint)


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
) -> dict[str, FeedbackRule]:
    """Convert, in place, every ``nn.Linear`` / ``nn.Conv{1,2,3}d`` of ``model`` (exact types) to its feedback
    class with the default ``rule`` and ``options``, per-name ``overrides`` (fnmatch pattern -> rule name or
    ``{rule, options}``; the last matching pattern wins) and ``exclude`` patterns left as plain torch layers.

    Returns {qualified name: rule} of the converted layers. Raises :class:`ConfigError` for an unknown rule,
    an option a rule does not take, a pattern matching no module, or a model that is already converted."""
    overrides = dict(overrides or {})
    exclude = list(exclude)
    already = feedback_layers(model)
    if already:
        raise ConfigError(
            "model is already converted", given=already[0][0] or type(model).__name__,
            suggestion="call bc.apply once per model; build a fresh model to change the constraints",
            has_given=True,
        )
    candidates = convertible_modules(model)
    names = [n for n, _ in candidates]
    check_patterns_match(overrides, names, "feedback.overrides")
    check_patterns_match(exclude, names, "feedback.exclude")
    plan: list[tuple[str, nn.Module, FeedbackRule]] = []
    for name, module in candidates:  # validate every rule before touching the model
        if match_any(name, exclude):
            continue
        rule_name, rule_options = _rule_for(name, (rule, dict(options or {})), overrides)
        plan.append((name, module, make_rule(rule_name, rule_options, seed=seed)))
    converted: dict[str, FeedbackRule] = {}
    for name, module, layer_rule in plan:
        FEEDBACK_CLASSES[type(module)].convert(module, layer_rule, name)
        converted[name] = layer_rule
    return converted


def describe(model: nn.Module, file=None) -> str:
    """A table of the model's weight layers: name, type, weight shape, feedback rule, Dale E/I counts.
    Printed to ``file`` (default stdout) and returned."""
    rows = [("layer", "type", "weight", "rule", "dale")]
    for name, m in model.named_modules():
        if not isinstance(m, FeedbackLayer) and type(m) not in FEEDBACK_CLASSES:
            continue
        rule = repr(m.rule) if isinstance(m, FeedbackLayer) else "(plain torch)"
        sign = getattr(m, "dale_sign", None)
        dale = f"{int((sign > 0).sum())}E/{int((sign < 0).sum())}I" if sign is not None else "-"
        rows.append((name or "(root)", type(m).__name__.replace("Parametrized", ""), "x".join(
            str(s) for s in m.weight.shape), rule, dale))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text, file=file)
    return text

