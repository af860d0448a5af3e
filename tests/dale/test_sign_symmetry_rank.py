"""Under Dale with a scalar magnitude, sign symmetry's B = M Z diag(s) with Z = [W != 0]: rank(B) = rank(Z), rank one
exactly when every row has the same zero pattern (docs/constraints.md, "Dale's law")."""

import torch
from torch import nn

import biocircuits as bc

SPEC = {
    "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "unit"}},
    "dale": {"excitatory_fraction": 0.5, "exempt": [], "init": "keep"},
}


def test_hand_written_support_sets_the_rank():
    layer = bc.apply(nn.Sequential(nn.Linear(4, 3)), SPEC)[0]  # s = [+ + - -]
    full = torch.tensor([[1.0, 2.0, -1.0, -3.0], [2.0, 0.5, -1.0, -1.0], [1.0, 1.0, -2.0, -0.5]])
    holes = torch.tensor([[1.0, 2.0, -1.0, -3.0], [2.0, 0.0, -1.0, -1.0], [1.0, 1.0, -2.0, 0.0]])
    same = torch.tensor([[1.0, 0.0, -1.0, -3.0], [2.0, 0.0, -1.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    # supports: all ones (rank 1); rows 1111 / 1011 / 1110 (rank 3); rows 1011 / 1011 / 0000 (rank 1)
    for weight, rank in ((full, 1), (holes, 3), (same, 1)):
        with torch.no_grad():
            layer.weight.copy_(weight)
        B = layer.backward_weight()
        assert torch.equal(B, (weight != 0).float() * torch.tensor([1.0, 1.0, -1.0, -1.0]))  # Z diag(s)
        assert int(torch.linalg.matrix_rank(B)) == rank


def train(enforce):
    torch.manual_seed(0)
    model = bc.apply(
        nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 5)),
        {**SPEC, "dale": {**SPEC["dale"], "enforce": enforce}},
    )
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.2), model)
    for _ in range(30):
        opt.zero_grad()
        (model(torch.rand(8, 6)) * torch.randn(8, 5)).sum().backward()
        opt.step()
    return model[2]


def test_project_zeros_raise_the_rank_and_softplus_stays_rank_one():
    layer = train("project")
    zeros = int((layer.weight == 0).sum())
    B = layer.backward_weight()
    support = (layer.weight.detach() != 0).float()
    assert zeros > 0 and int(torch.linalg.matrix_rank(B)) == int(torch.linalg.matrix_rank(support)) > 1
    assert torch.equal(B[layer.weight.detach() == 0], torch.zeros(zeros))  # zeros leave the feedback too
    smooth = train("softplus")
    assert int((smooth.weight == 0).sum()) == 0 and int(torch.linalg.matrix_rank(smooth.backward_weight())) == 1
