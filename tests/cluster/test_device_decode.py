"""``data.decode: gpu`` (``biocircuits/data/device_decode.py``): selected by the option (workers hand over bytes,
the batch decodes where it moves to), refused without CUDA; the decoded batch against PIL by hand (on the CPU,
which ``decode_jpeg`` also runs on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from biocircuits.config.experiment import DataSpec, Experiment
from biocircuits.data import build_data
from biocircuits.data.device_decode import EncodedBatch, check_decode
from biocircuits.data.loaders import make_loader
from biocircuits.errors import ConfigError, DataError
from biocircuits.train import run_experiment

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def flat_folder(root, size=(30, 22)):
    """train/ and val/ of flat-colour JPEGs (every crop, resize and flip of one is the same colour)."""
    colours = [(200, 40, 90), (10, 250, 128), (77, 77, 200)]
    for split in ("train", "val"):
        for c, colour in enumerate(colours):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8)).save(folder / "a.jpg", quality=95)
    return root


def test_gpu_decode_is_selected_and_matches_pil_by_hand(tmp_path):
    root = flat_folder(tmp_path)
    data = build_data(DataSpec(name="imagefolder", root=str(root), image_size=16, decode="gpu"))
    spec = DataSpec(name="imagefolder", num_workers=0)
    loader, _ = make_loader(data.train, 3, train=True, world=1, rank=0, seed=0, spec=spec)
    encoded, targets = next(iter(loader))
    assert isinstance(encoded, EncodedBatch) and all(d.dtype == torch.uint8 and d.dim() == 1 for d in encoded.data)
    batch = encoded.to("cpu")  # what .to(cuda) does on a GPU, here on the CPU
    assert batch.shape == (3, 3, 16, 16) and batch.dtype == torch.float32
    for x, path, t in zip(batch, encoded.paths, targets.tolist(), strict=True):
        assert path.endswith(f"c{t}/a.jpg")
        pixel = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)[5, 5]  # PIL's decode
        expected = torch.tensor([(pixel[i] / 255 - MEAN[i]) / STD[i] for i in range(3)], dtype=torch.float32)
        assert torch.allclose(x.mean((1, 2)), expected, atol=2.5 / 255 / min(STD)), (x.mean((1, 2)), expected)
    x_val, _ = data.val[0]  # validation keeps the CPU path
    assert x_val.shape == (3, 16, 16)


def test_gpu_decode_names_the_files_of_a_bad_batch(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DataError, match="bad.jpg"):
        EncodedBatch([torch.frombuffer(bytearray(bad.read_bytes()), dtype=torch.uint8)], [str(bad)], 8).to("cpu")


def test_gpu_decode_is_refused_without_cuda(tmp_path):
    check_decode("cpu", "cpu", "cifar10")
    check_decode("gpu", "cuda", "webdataset")
    with pytest.raises(ConfigError, match="data.decode"):
        check_decode("gpu", "cpu", "imagefolder")
    with pytest.raises(ConfigError, match="holds none"):
        check_decode("gpu", "cuda", "cifar10")
    exp = Experiment.from_dict(
        {
            "name": "dec",
            "data": {"name": "imagefolder", "root": str(flat_folder(tmp_path)), "decode": "gpu"},
            "model": {"name": "mlp"},
            "train": {"steps": 1, "device": "cpu", "batch_size": 2},
        }
    )
    with pytest.raises(ConfigError, match="CUDA device"):
        run_experiment(exp, tmp_path / "run")


def test_gpu_decode_of_shards_hands_over_encoded_batches(tmp_path):
    from biocircuits.app.shard import shard_folder

    shard_folder(flat_folder(tmp_path / "imgs"), tmp_path / "shards", per_shard=2, seed=0)
    spec = DataSpec(name="webdataset", root=str(tmp_path / "shards"), image_size=8, decode="gpu")
    data = build_data(spec)
    loader, _ = make_loader(data.train, 3, train=True, world=1, rank=0, seed=0, spec=spec)
    encoded, targets = next(iter(loader))
    assert isinstance(encoded, EncodedBatch) and len(encoded) == 3
    batch = encoded.to("cpu")
    assert batch.shape == (3, 3, 8, 8)
    for x, t in zip(batch, targets.tolist(), strict=True):  # each image's flat colour: its class's (PIL by hand)
        pixel = np.asarray(Image.open(tmp_path / "imgs" / "train" / f"c{t}" / "a.jpg").convert("RGB"), dtype=float)
        expected = torch.tensor([(pixel[5, 5, i] / 255 - MEAN[i]) / STD[i] for i in range(3)], dtype=torch.float32)
        assert torch.allclose(x.mean((1, 2)), expected, atol=2.5 / 255 / min(STD))
