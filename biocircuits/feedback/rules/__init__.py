"""Feedback rules: each is one class in one file, registered by name."""

from .backprop import Backprop
from .feedback_alignment import FeedbackAlignment
from .registry import RULES, FeedbackRule, make_rule, register_rule, rule_class, validate_options
from .sign_symmetry import SignSymmetry

__all__ = [
    "RULES", "Backprop", "FeedbackAlignment", "FeedbackRule", "SignSymmetry",
    "make_rule", "register_rule", "rule_class", "validate_options",
]
