"""``bc.nn``: the converted layer classes (subclasses of the torch layers they replace)."""

from biocircuits.feedback.attention import FeedbackMultiheadAttention
from biocircuits.feedback.layers import FeedbackConv1d, FeedbackConv2d, FeedbackConv3d, FeedbackLayer, FeedbackLinear
from biocircuits.feedback.recurrent import FeedbackGRU, FeedbackLSTM, FeedbackRNN

__all__ = [
    "FeedbackConv1d",
    "FeedbackConv2d",
    "FeedbackConv3d",
    "FeedbackLayer",
    "FeedbackLinear",
    "FeedbackMultiheadAttention",
    "FeedbackRNN",
    "FeedbackGRU",
    "FeedbackLSTM",
]
