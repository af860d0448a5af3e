"""Rule options whose values a saved config records even when the spec leaves them to their defaults.

A run folder's ``config.yaml`` (and a checkpoint's ``config``) holds the resolved experiment, and ``--resume``
refuses any difference that would change the trajectory
([`check_resume`][biocircuits.train.resume_check.check_resume]). A rule option left unset is saved unset, so a
later release that changes its default would silently change a resumed run. A rule names such options in its
``recorded_options`` (the weight mirror's schedule, whose defaults changed in #27): their values are written into
the saved config, so a resume under other defaults is refused with the key, and the run can be resumed by setting
the saved values explicitly."""

from __future__ import annotations

from typing import Any

from biocircuits.feedback.rules import rule_class, validate_options


def with_recorded(rule: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of feedback rule ``rule`` plus the resolved value of each of its ``recorded_options`` that
    ``options`` leaves unset (a copy when anything is added)."""
    missing = [name for name in rule_class(rule).recorded_options if name not in options]
    if not missing:
        return options
    resolved = validate_options(rule, options).model_dump(mode="json")
    return {**options, **{name: resolved[name] for name in missing}}


def record_defaults(constraints: dict[str, Any]) -> dict[str, Any]:
    """A dumped constraint spec (``Constraints.model_dump(mode="json")``) with the recorded options of the default
    feedback rule and of every per-layer override written out; modified in place and returned."""
    feedback = constraints.get("feedback")
    if not feedback:
        return constraints
    feedback["options"] = with_recorded(feedback["rule"], feedback.get("options") or {})
    for pattern, ref in (feedback.get("overrides") or {}).items():
        rule, options = (ref, {}) if isinstance(ref, str) else (ref["rule"], ref.get("options") or {})
        recorded = with_recorded(rule, options)
        if recorded is not options:
            feedback["overrides"][pattern] = {"rule": rule, "options": recorded}
    return constraints
