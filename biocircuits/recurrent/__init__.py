"""Recurrent learning in time: the spiking model ``lif_rnn`` ([`lif`][biocircuits.recurrent.lif]) and the online rules
``eprop`` and ``rflo`` ([`rules`][biocircuits.recurrent.rules]): eligibility traces run forward with the network
([`traces`][biocircuits.recurrent.traces]), the output error comes back through B as a learning signal, and
[`learner`][biocircuits.recurrent.learner] fills ``.grad`` per trial without backprop through time;
[`step`][biocircuits.recurrent.step] is the training step that hands a trial to it."""

from .learner import OnlineLearner, online_learner
from .lif import LIFRNN, lif_rnn
from .rules import RFLO, EProp, OnlineRule
from .step import OnlineStep, online_step

__all__ = [
    "LIFRNN",
    "RFLO",
    "EProp",
    "OnlineLearner",
    "OnlineRule",
    "OnlineStep",
    "lif_rnn",
    "online_learner",
    "online_step",
]
