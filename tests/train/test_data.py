"""Every registered dataset loads (torchvision ones from tiny fake trees in their formats); models build."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import biocircuits as bc
from biocircuits.config.experiment import DataSpec
from biocircuits.data import DATASETS, build_data
from biocircuits.models import build_model
from biocircuits.train.trainer import run_experiment

from .helpers import write_imagefolder

ROOT = Path(__file__).resolve().parents[2]


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, folder: str) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 6)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)), 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)), 2049)


def fake_cifar(root: Path, name: str) -> None:
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for f in files:
            with open(folder / f, "wb") as fh:
                pickle.dump(
                    {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, 4))},
                    fh,
                )
        with open(folder / "batches.meta", "wb") as fh:
            pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for f in ("train", "test"):
            with open(folder / f, "wb") as fh:
                pickle.dump(
                    {
                        "data": rng.integers(0, 255, (4, 3072), dtype=np.uint8),
                        "fine_labels": list(rng.integers(0, 100, 4)),
                    },
                    fh,
                )
        with open(folder / "meta", "wb") as fh:
            pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, fh)


@pytest.mark.parametrize(
    "name,shape,classes", [("digits", (1, 8, 8), 10), ("mnist5k", (1, 28, 28), 10), ("synthetic", (3, 32, 32), 10)]
)
def test_offline_datasets(name, shape, classes):
    bundle = build_data(DataSpec(name=name, val_fraction=0.25, split_seed=1))
    x, y = bundle.train[0]
    assert tuple(x.shape) == shape and bundle.num_classes == classes and 0 <= int(y) < classes
    again = build_data(DataSpec(name=name, val_fraction=0.25, split_seed=1))
    assert torch.equal(bundle.val[3][0], again.val[3][0])  # seeded split
    if name != "synthetic":
        n = len(bundle.train) + len(bundle.val)
        assert len(bundle.val) == round(0.25 * n)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_torchvision_mnist_like_from_fake_raw_files(tmp_path, name):
    fake_mnist(tmp_path, {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name])
    bundle = build_data(DataSpec(name=name, root=str(tmp_path)))
    assert len(bundle.train) == 12 and len(bundle.val) == 6 and bundle.train[0][0].shape == (1, 28, 28)


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_torchvision_cifar_from_fake_pickles(tmp_path, monkeypatch, name, classes):
    fake_cifar(tmp_path, name)
    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    # the fake files lack the official md5 sums: skip only that check; the loading code runs as is
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    bundle = build_data(DataSpec(name=name, root=str(tmp_path)))
    assert bundle.num_classes == classes and bundle.train[0][0].shape == (3, 32, 32)
    assert len(bundle.train) == (20 if name == "cifar10" else 4)


def test_missing_torchvision_dataset_says_where_and_how(tmp_path):
    with pytest.raises(bc.ConfigError, match=r"not found under .*download: true"):
        build_data(DataSpec(name="cifar10", root=str(tmp_path / "nowhere")))


def test_registry_lists_every_dataset():
    assert {"digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder", "synthetic"} <= set(
        DATASETS
    )


def test_imagefolder_trains_two_steps(tmp_path):
    write_imagefolder(tmp_path / "imnet", classes=3, per_class=4, size=40)
    from biocircuits.config.experiment import Experiment

    exp = Experiment.from_dict(
        {
            "name": "imgf",
            "constraints": "sign_symmetry.yaml",
            "data": {"name": "imagefolder", "root": str(tmp_path / "imnet"), "image_size": 32},
            "model": {"name": "resnet18"},
            "train": {"steps": 2, "batch_size": 4, "log_every": 1},
        }
    )
    summary = run_experiment(exp, tmp_path / "run")
    assert summary["steps"] == 2 and summary["val_acc1"] is not None


def test_imagefolder_missing_split_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(bc.ConfigError, match="no val folder"):
        build_data(DataSpec(name="imagefolder", root=str(tmp_path)))


@pytest.mark.parametrize(
    "name,shape",
    [
        ("mlp", (1, 8, 8)),
        ("lenet", (1, 28, 28)),
        ("convnet", (3, 32, 32)),
        ("resnet18", (3, 32, 32)),
        ("mobilenet_v3_small", (3, 32, 32)),
    ],
)
def test_models_build_and_run(name, shape):
    model = build_model(name, shape, 7, {})
    assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_quickstart_reaches_stated_accuracy_with_bp(tmp_path):
    """The quickstart (bp, 3 epochs on mnist5k) reaches >= 92% validation top-1 (measured: 95.4%)."""
    from biocircuits.config.experiment import Experiment

    exp = Experiment.from_yaml(ROOT / "experiments" / "quickstart.yaml", {"train.probe_every": None})
    summary = run_experiment(exp, tmp_path / "qs")
    assert summary["val_acc1"] >= 92.0


def test_grayscale_digits_become_three_channel_images_for_torchvision_models():
    bundle = build_data(DataSpec(name="digits", channels=3, resize=32))
    x, _ = bundle.train[0]
    assert bundle.input_shape == (3, 32, 32) and x.shape == (3, 32, 32)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    plain = build_data(DataSpec(name="digits")).train[0][0]
    by_hand = torch.nn.functional.interpolate(plain[None], size=(32, 32), mode="bilinear", antialias=True)[0, 0]
    assert torch.allclose(x[0], by_hand, atol=1e-6)
    with pytest.raises(bc.ConfigError, match="data.channels"):
        build_data(DataSpec(name="synthetic", shape=[3, 8, 8], channels=1))
