"""Feedback rules: each is one class in one file, registered by name in ``RULES``."""

from .backprop import Backprop
from .feedback_alignment import FeedbackAlignment
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

__all__ = [
    "RULES", "Backprop", "Feedback", "FeedbackAlignment", "FeedbackRule", "SignSymmetry", "draw_init_uniform",
    "init_std", "make_rule", "register_rule", "rule_class", "validate_options",
]
