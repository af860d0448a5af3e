"""bc.describe and bc.probe list the recurrent matrices with their rules (biocircuits/feedback/recurrent.py,
probes/alignment.py), and no-self-connections holds under Dale's reparametrising enforcers (recurrent/masks.py)."""

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biocircuits as bc
from biocircuits.models.recurrent import RateRNN


class Host(nn.Module):
    def __init__(self, cls):
        super().__init__()
        self.rnn = cls(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def _loss(out, y):
    return F.cross_entropy(out.reshape(-1, 2), y.reshape(-1))


def _angle(a, b):
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    return math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b / (a.norm() * b.norm()))))))


@pytest.mark.parametrize("cls,gates", [(nn.GRU, "gates r|z|n, 4 rows each"), (nn.LSTM, "gates i|f|g|o, 4 rows each")])
def test_describe_lists_each_gate_matrix_with_its_rule(cls, gates):
    torch.manual_seed(0)
    m = bc.apply(Host(cls), {"feedback": {"rule": "sign_symmetry"}})
    text = bc.describe(m, file=io.StringIO())
    name = cls.__name__
    for matrix in ("weight_ih_l0", "weight_hh_l0"):
        row = next(line for line in text.splitlines() if line.startswith(f"rnn.feedback_matrices.{matrix} "))
        assert f"{name}.{matrix} ({gates})" in row and "sign_symmetry" in row
        param = next(line for line in text.splitlines() if line.startswith(f"rnn.{matrix} "))
        assert f"through rnn.feedback_matrices.{matrix}" in param
    assert "adds to the gates" in next(line for line in text.splitlines() if line.startswith("rnn.bias_hh_l0 "))


def test_describe_lists_the_rate_rnn_matrices_with_the_online_rule():
    m = bc.apply(RateRNN(2, 3, 2), {"feedback": {"rule": "eprop", "options": {"update": "per_step"}}})
    rows = {line.split()[0]: line for line in bc.describe(m, file=io.StringIO()).splitlines()[2:]}
    assert {"input", "recurrent", "readout"} <= set(rows)
    assert all("eprop" in rows[n] and "per_step" in rows[n] for n in ("input", "recurrent", "readout"))


def test_probe_gives_each_rnn_matrix_its_weight_and_update_angle():
    torch.manual_seed(0)
    plain = Host(nn.LSTM)
    m = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "fa"}})
    x, y = torch.randn(2, 5, 3), torch.randint(0, 2, (2, 5))
    rows = bc.probe(m, x, y, loss_fn=_loss)
    _loss(plain(x), y).backward()  # backprop's update
    _loss(m(x), y).backward()  # the rule's
    for matrix in ("weight_ih_l0", "weight_hh_l0"):
        row = rows[f"rnn.feedback_matrices.{matrix}"]
        b = m.rnn.feedback_matrices[matrix].feedback_weight
        assert row.rule == "fa" and math.isnan(row.error_angle)
        assert row.weight_angle == pytest.approx(_angle(getattr(m.rnn, matrix), b), abs=1e-6)
        grads = (getattr(m.rnn, matrix).grad, getattr(plain.rnn, matrix).grad)
        assert row.update_angle == pytest.approx(_angle(*grads), abs=1e-4)
        assert row.update_angle > 1.0  # fa's update differs from backprop's


@pytest.mark.parametrize("enforce", ["abs", "softplus"])
def test_no_self_connections_under_reparametrised_dale(enforce):
    torch.manual_seed(0)
    m = RateRNN(2, 4, 2, dale=0.75, self_connections=False)
    dale = {"layers": ["recurrent", "readout"], "types": "per_layer", "excitatory_fraction": 0.75}
    dale.update({"assignment": "block", "enforce": enforce, "init": "keep"})
    bc.apply(m, {"feedback": {"rule": "fa"}, "dale": dale})
    opt = bc.bind(torch.optim.SGD(m.parameters(), lr=0.1), m)
    before = m.recurrent.weight.detach().clone()
    for _ in range(2):
        m(torch.randn(4, 5, 2)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    assert torch.count_nonzero(m.recurrent.weight.detach().diagonal()) == 0
    assert not torch.equal(before, m.recurrent.weight.detach()) and bc.audit(m).violations == 0
    bc.remove(m)
    assert torch.count_nonzero(m.recurrent.weight.detach().diagonal()) == 0
