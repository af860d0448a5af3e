"""Feedback pathways: autograd ops, rules, converted layers and conversion."""

from .convert import convert, describe, feedback_class, feedback_layers, unconvert
from .functional import feedback_conv, feedback_linear
from .layers import FEEDBACK_CLASSES, FeedbackConv1d, FeedbackConv2d, FeedbackConv3d, FeedbackLayer, FeedbackLinear
from .recurrent import FeedbackGRU, FeedbackLSTM, FeedbackRNN
from .rules import RULES, FeedbackRule, make_rule, register_rule

__all__ = [
    "FEEDBACK_CLASSES",
    "RULES",
    "FeedbackConv1d",
    "FeedbackConv2d",
    "FeedbackConv3d",
    "FeedbackGRU",
    "FeedbackLSTM",
    "FeedbackLayer",
    "FeedbackLinear",
    "FeedbackRNN",
    "FeedbackRule",
    "convert",
    "describe",
    "feedback_class",
    "feedback_conv",
    "feedback_layers",
    "feedback_linear",
    "make_rule",
    "register_rule",
    "unconvert",
]
