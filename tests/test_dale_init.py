"""Deep Dale networks at initialisation (``benchmarks/dale_init.py``, the variants of the deep-Dale sweep files): the
collapse the table documents (the old column-sign ResNet-18 carries a one-dimensional representation, the divisive
population norm restores a high-dimensional one) and the DANN + sign symmetry finding (uncentred sign feedback
explodes down the network, centred feedback at W's scale does not)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import dale_init  # noqa: E402


def spec(variant: str):
    return dale_init.variants()[variant][1]


def test_population_norm_undoes_the_collapse_at_init():
    old = dale_init.participation_ratios(spec("Dale_old_bp"), n=128)
    new = dale_init.participation_ratios(spec("Dale_new_bp"), n=128)
    assert max(old[f"layer{i}.1"] for i in (2, 3, 4)) < 3.0  # every channel carries ~ the same signal
    assert min(new[f"layer{i}.1"] for i in (2, 3, 4)) > 10.0


def test_uncentred_sign_feedback_explodes_down_a_dann_resnet_and_centring_at_w_scale_does_not():
    """The documented finding at a small batch: at init the first layer's gradient under DANN + sign symmetry is
    orders of magnitude above bp's without centring, within a small factor of it with centre + weight_rms."""
    plain = dale_init.gradient_ratios(spec("DANN_sign_symmetry_paper"), spec("DANN_bp"), n=32)
    fixed = dale_init.gradient_ratios(spec("DANN_sign_symmetry_centred"), spec("DANN_bp"), n=32)
    assert plain["conv1"] > 1e4 and plain["layer4.1.conv2"] < 10.0
    assert all(0.2 < r < 5.0 for r in fixed.values()), fixed
