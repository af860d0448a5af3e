"""Rule options whose values a saved config records even when the spec leaves them to their defaults.

A run folder's ``config.yaml`` (and a checkpoint's ``config``) holds the resolved experiment, and ``--resume``
refuses any difference that would change the trajectory
([`check_resume`][biocircuits.train.resume_check.check_resume]). A rule option left unset would be saved unset, so a
later release that changes its default would silently change a resumed run. A rule names such options in its
``recorded_options``, each with the value a config saved before the option was recorded ran with: new configs hold
the values ([`record_defaults`][biocircuits.config.recorded.record_defaults]); a saved config that lacks them is read
with those earlier values ([`record_earlier`][biocircuits.config.recorded.record_earlier]). Either way a resume under
other defaults is refused with the key, and the run resumes when the saved values are set explicitly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from biocircuits.feedback.rules import rule_class, validate_options

Fill = Callable[[str, dict[str, Any], list[str]], dict[str, Any]]


def _resolved(rule: str, options: dict[str, Any], missing: list[str]) -> dict[str, Any]:
    resolved = validate_options(rule, options).model_dump(mode="json")
    return {name: resolved[name] for name in missing}


def _earlier(rule: str, options: dict[str, Any], missing: list[str]) -> dict[str, Any]:
    return {name: rule_class(rule).recorded_options[name] for name in missing}


def with_recorded(rule: str, options: dict[str, Any], fill: Fill = _resolved) -> dict[str, Any]:
    """``options`` of feedback rule ``rule`` plus a value for each of its ``recorded_options`` that ``options``
    leaves unset: today's default (``fill`` = resolved) or the value of configs saved before it was recorded. A copy
    when anything is added."""
    missing = [name for name in rule_class(rule).recorded_options if name not in options]
    return {**options, **fill(rule, options, missing)} if missing else options


def _record(constraints: dict[str, Any], fill: Fill) -> dict[str, Any]:
    feedback = constraints.get("feedback")
    if not feedback:
        return constraints
    options = feedback.get("options") or {}
    recorded = with_recorded(feedback.get("rule", "bp"), options, fill)
    if recorded is not options:
        feedback["options"] = recorded
    for pattern, ref in (feedback.get("overrides") or {}).items():
        rule, options = (ref, {}) if isinstance(ref, str) else (ref["rule"], ref.get("options") or {})
        recorded = with_recorded(rule, options, fill)
        if recorded is not options:
            feedback["overrides"][pattern] = {"rule": rule, "options": recorded}
    return constraints


def record_defaults(constraints: dict[str, Any]) -> dict[str, Any]:
    """A dumped constraint spec (``Constraints.model_dump(mode="json")``) with the recorded options of the default
    feedback rule and of every per-layer override written out at today's defaults; modified in place and returned."""
    return _record(constraints, _resolved)


def record_earlier(constraints: dict[str, Any]) -> dict[str, Any]:
    """A saved config's constraint section with every recorded option it lacks set to the value it ran with (the
    rule's ``recorded_options``); modified in place and returned. Anything unexpected is left as it is."""
    try:
        return _record(constraints, _earlier)
    except Exception:  # noqa: BLE001  (a config that no longer validates is compared as saved)
        return constraints
