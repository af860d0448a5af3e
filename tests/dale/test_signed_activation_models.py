"""The ``dale`` preset (column signs + population norm) on torchvision networks with signed activations (Hardswish,
SiLU, GELU): finite steps, 0 violations and 0 effective violations (issue #23 item 5). The 20-step check at the same
sizes: ``python benchmarks/dale_signed_models.py``."""

import pytest
import torch
import torchvision

import biocircuits as bc


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"])
def test_dale_preset_trains_signed_activation_networks(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=10)
    bc.apply(model, "dale")
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), model)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    signed = []
    hook = model.features[1].register_forward_pre_hook(lambda m, a: signed.append(bool((a[0] < 0).any())))
    for _ in range(2):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        assert bool(torch.isfinite(loss))
    hook.remove()
    assert signed[0]  # the population-normed layers do read signed activity
    report = bc.audit(model, spectra=False)
    assert report.violations == 0 and report.effective_violations == 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
