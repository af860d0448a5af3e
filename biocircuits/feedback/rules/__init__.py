"""Feedback rules: each is one class in one file, registered by name in ``RULES``."""

from .backprop import Backprop
from .direct_feedback_alignment import DirectFeedbackAlignment
from .feedback_alignment import FeedbackAlignment
from .kolen_pollack import KolenPollack
from .registry import (
    RULES,
    Feedback,
    FeedbackRule,
    draw_init_uniform,
    init_std,
    make_rule,
    register_rule,
    rule_class,
    validate_options,
)
from .sign_symmetry import SignSymmetry
from .weight_mirror import WeightMirror

__all__ = [
    "RULES",
    "Backprop",
    "DirectFeedbackAlignment",
    "Feedback",
    "FeedbackAlignment",
    "FeedbackRule",
    "KolenPollack",
    "SignSymmetry",
    "WeightMirror",
    "draw_init_uniform",
    "init_std",
    "make_rule",
    "register_rule",
    "rule_class",
    "validate_options",
]
