"""The command's paths (``biocircuits run``: the CLI and the trainer; a sweep trial, in every Ray worker) import no
heavy optional library: torchvision (which pulls in ``torch._dynamo``), matplotlib and PIL are imported by the
builders, loaders and plots that use them. What they build still works, and the registries keep every name."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

import biocircuits as bc
from biocircuits.dale import residual
from biocircuits.models.torchvision_models import TORCHVISION_MODELS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torchvision", "torch._dynamo", "matplotlib", "PIL")
PATHS = ("biocircuits.app.cli", "biocircuits.app.sweep.trial", "biocircuits.train.trainer")


def test_the_run_and_sweep_trial_paths_import_no_heavy_optional_library():
    code = (
        f"import sys\nimport {', '.join(PATHS)}\nimport biocircuits as bc\nbc.apply, bc.audit\n"
        "from biocircuits.models.registry import MODELS\nfrom biocircuits.data.registry import DATASETS\n"
        "print('resnet18' in MODELS, 'cifar10' in DATASETS, 'imagefolder' in DATASETS)\n"
        f"print(*[name for name in {HEAVY!r} if name in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    registered, imported = done.stdout.splitlines()
    assert registered == "True True True"  # the names are registered without importing their library
    assert imported == "", f"imported at import time: {imported}"


def test_the_listed_torchvision_models_are_torchvisions():
    assert sorted(TORCHVISION_MODELS) == sorted(torchvision.models.list_models(module=torchvision.models))


@pytest.mark.parametrize("block", [BasicBlock(8, 8), Bottleneck(8, 2)], ids=["basic", "bottleneck"])
def test_signed_blocks_are_built_on_first_use_and_pickle(block):
    torch.manual_seed(0)
    model = bc.apply(nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), block), {"dale": {"residual": "signed"}})
    signed = model[2]
    assert type(signed) is getattr(residual, "Signed" + type(block).__name__.removeprefix("Signed"))
    assert isinstance(signed, residual.SignedShortcut) and isinstance(signed, (BasicBlock, Bottleneck))
    model.eval()
    x = torch.rand(2, 3, 5, 5)
    h = torch.relu(model[0](x))  # the block's input
    s = signed.residual_sign.view(1, -1, 1, 1)
    assert bool((s < 0).any())  # inhibitory units: the signed shortcut differs from the identity
    body = signed.bn1(signed.conv1(h))
    if isinstance(signed, Bottleneck):
        body = signed.bn2(signed.conv2(torch.relu(body)))
    last = (signed.conv3, signed.bn3) if isinstance(signed, Bottleneck) else (signed.conv2, signed.bn2)
    body = last[1](last[0](torch.relu(body)))
    out = model(x)
    torch.testing.assert_close(out, torch.relu(body + h * s), rtol=0, atol=1e-6)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded[2]) is type(signed)
    assert torch.equal(loaded(x), out)
    bc.remove(model)
    assert type(model[2]) in (BasicBlock, Bottleneck)
