"""The trainer's loss and accuracy for sequence outputs (biocircuits/train/targets.py) against hand loops."""

import math

import torch
import torch.nn.functional as F

from biocircuits.train.targets import task_loss, topk_correct


def hand_sequence_loss(z: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over trials of the mean over response steps of -log softmax(z_bt)[y_bt], by loops."""
    total = 0.0
    for b in range(z.shape[0]):
        terms = []
        for t in range(z.shape[1]):
            if y[b, t] >= 0:
                logits = z[b, t].tolist()
                norm = math.log(sum(math.exp(v) for v in logits))
                terms.append(norm - logits[int(y[b, t])])
        total += sum(terms) / max(len(terms), 1)
    return total / z.shape[0]


def test_sequence_loss_masks_steps_and_averages_per_trial():
    torch.manual_seed(0)
    z = torch.randn(3, 5, 4, dtype=torch.float64)
    y = torch.full((3, 5), -1)
    y[0, 4], y[1, 2:] = 2, 1  # one response step, three response steps, none
    assert abs(float(task_loss(z, y)) - hand_sequence_loss(z, y)) < 1e-6
    assert abs(float(task_loss(z, y, reduction="sum")) - 3 * hand_sequence_loss(z, y)) < 1e-5


def test_trial_decision_is_the_mean_response_logit():
    z = torch.zeros(3, 4, 3)
    y = torch.full((3, 4), -1)
    y[:, 2:] = torch.tensor([[0], [1], [2]])
    z[0, 2:, 0] = 1.0  # right
    z[1, 2, 0], z[1, 3, 1] = 3.0, 2.0  # mean [1.5, 1, 0]: wrong at top-1, right at top-2
    z[2, :2, 2] = 9.0  # large outside the response period only: ignored, so wrong
    z[2, 2:, 1], z[2, 2:, 0] = 1.0, 0.5  # mean [0.5, 1, 0]: wrong at top-1 and top-2
    assert topk_correct(z, y, ks=(1, 2)) == [1.0, 2.0]
    y[0] = -1  # a trial without response steps is wrong
    assert topk_correct(z, y, ks=(1,)) == [0.0]


def test_classifier_outputs_are_unchanged():
    z, y = torch.randn(6, 5), torch.randint(5, (6,))
    torch.testing.assert_close(task_loss(z, y, 0.1), F.cross_entropy(z, y, label_smoothing=0.1))
    hits = (z.argmax(1) == y).sum()
    assert topk_correct(z, y, ks=(1,)) == [float(hits)]
