"""Memory of an online rule does not grow with the trial's length (no backprop-through-time graph): the live tensor
bytes during a trial, counted at every op, peak at a level that grows per added step by less than one hidden state
(only the outputs and the targets' weights are per step), while autograd BPTT keeps every step's state."""

import sys
from pathlib import Path

import pytest
import torch

import biocircuits as bc
from biocircuits.models.recurrent import RateRNN
from biocircuits.recurrent import LIFRNN, online_learner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from recurrent_memory import LiveBytes  # noqa: E402  (the benchmark's own counter: one definition)

B, N_IN, N, N_OUT = 8, 4, 32, 3


def _model(kind, rule):
    torch.manual_seed(0)
    m = RateRNN(N_IN, N, N_OUT, activation="tanh") if kind == "rate" else LIFRNN(N_IN, N, N_OUT, beta=0.5)
    return bc.apply(m, {"feedback": {"rule": rule}})


def _peak(kind, rule, steps):
    m = _model(kind, rule)
    x, y = torch.randn(B, steps, N_IN), torch.randint(0, N_OUT, (B, steps))
    with LiveBytes() as mode:
        if rule == "bp":
            out = m(x)
            torch.nn.functional.cross_entropy(out.flatten(0, 1), y.flatten()).backward()
        else:
            out = online_learner(m).accumulate(x, y)
        del out
    return mode.peak


@pytest.mark.parametrize("kind,rule", [("rate", "eprop"), ("rate", "rflo"), ("lif", "eprop")])
def test_online_memory_does_not_grow_with_the_trial(kind, rule):
    short, long = 20, 80
    state_bytes = B * N * 4  # one step's hidden state, float32
    online = (_peak(kind, rule, long) - _peak(kind, rule, short)) / (long - short)
    bptt = (_peak(kind, "bp", long) - _peak(kind, "bp", short)) / (long - short)
    assert online < state_bytes, (online, state_bytes)
    assert bptt > 2 * state_bytes, (bptt, state_bytes)  # the measure sees BPTT's graph grow
