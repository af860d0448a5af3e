"""WebDataset shards (``biocircuits/data/shards.py``, ``webdataset.py``, ``biocircuits shard``): the files written,
the documented epoch semantics computed by hand (shard order, streams per rank and worker, batch order), an exact
resume in the stream and in a run, and a WebDataset reader reading the shards."""

from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from biocircuits.app.cli import main
from biocircuits.app.shard import shard_folder
from biocircuits.config.experiment import DataSpec, Experiment
from biocircuits.data import build_data
from biocircuits.data.webdataset import ShardStream
from biocircuits.errors import ConfigError
from biocircuits.train import run_experiment
from biocircuits.train.checkpoint import load_checkpoint

from ..train.helpers import Kill

CLASSES = 2


def flat_colour_folder(root: Path, per_class: int) -> list[int]:
    """root/{train,val}/class_c/img_i.JPEG, each image one flat grey level 8 * id (id: its place in the train
    listing, sorted as ImageFolder sorts), so a decoded pixel tells which sample it is. Returns train's ids."""
    ids = []
    for split in ("train", "val"):
        for c in range(CLASSES):
            for i in range(per_class):
                sample = c * per_class + i
                folder = root / split / f"class_{c}"
                folder.mkdir(parents=True, exist_ok=True)
                pixels = np.full((8, 8, 3), 8 * sample + 4, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img_{i}.JPEG", quality=95)
                ids.append(sample) if split == "train" else None
    return ids


def listing(root: Path) -> list[tuple[str, int, int]]:
    """(path, class, id) of train's images in ImageFolder's order (class folders, then file names, sorted)."""
    return [
        (str(root / "train" / f"class_{c}" / name), c, c * 11 + int(name[4:-5]))
        for c in range(CLASSES)
        for name in sorted(f"img_{i}.JPEG" for i in range(11))
    ]


def sample_id(image) -> torch.Tensor:
    return torch.tensor(int(round((np.asarray(image)[0, 0, 0] - 4) / 8)))


def stream_of(out: Path, world: int, rank: int, batch: int, workers: int, buffer: int, seed: int = 3) -> ShardStream:
    index = json.loads((out / "index.json").read_text())
    stream = ShardStream(out, index["train"], sample_id, buffer)
    spec = DataSpec(name="webdataset", num_workers=workers)
    stream.loader(batch, world=world, rank=rank, seed=seed, spec=spec)
    return stream


def rank_batches(stream: ShardStream, workers: int) -> list[list[int]]:
    """The rank's batches as PyTorch's loader takes them: worker 0, 1, ..., K-1, 0, 1, ..."""
    per_worker = [list(stream.batches(p, workers)) for p in range(workers)]
    out = []
    for j in range(max(len(b) for b in per_worker)):
        for b in per_worker:
            if j < len(b):
                out.append(b[j][0].tolist())
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, list[int]]:
    root = tmp_path_factory.mktemp("imgs")
    ids = flat_colour_folder(root, per_class=11)  # 22 train samples
    out = root / "shards"
    shard_folder(root, out, per_shard=4, seed=5)
    return out, ids


def test_shards_hold_the_files_bytes_in_a_seeded_order(shards):
    out, _ = shards
    index = json.loads((out / "index.json").read_text())
    assert [s["samples"] for s in index["train"]] == [4, 4, 4, 4, 4, 2] and index["classes"] == ["class_0", "class_1"]
    root = out.parent
    order = listing(root)
    random.Random(5).shuffle(order)  # the documented train order
    with tarfile.open(out / "train-000001.tar") as tar:
        names = tar.getnames()
        assert names[:2] == ["train_00000004.jpg", "train_00000004.cls"]
        assert tar.extractfile(names[0]).read() == Path(order[4][0]).read_bytes()
        assert tar.extractfile(names[1]).read() == str(order[4][1]).encode()
    with pytest.raises(ConfigError, match="already holds shards"):
        shard_folder(root, out, per_shard=4, seed=5)


def test_epoch_streams_by_hand(shards):
    out, _ = shards
    order = listing(out.parent)
    random.Random(5).shuffle(order)
    ids = [sample for _, _, sample in order]  # sample ids in shard order
    shard_ids = [ids[i : i + 4] for i in range(0, 22, 4)]
    world, workers, batch, seed, epoch = 2, 2, 2, 3, 1
    for rank in range(world):
        stream = stream_of(out, world, rank, batch, workers, buffer=0, seed=seed)
        stream.set_epoch(epoch)
        order = torch.randperm(6, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        sequence = [s for i in order for s in shard_ids[i]]
        c = 22 // (world * workers * batch) * batch  # 4 samples per stream
        streams = [sequence[s * c : (s + 1) * c] for s in range(world * workers)]
        expected = [
            streams[rank * workers + j % workers][(j // workers) * batch : (j // workers + 1) * batch]
            for j in range(workers * c // batch)
        ]
        assert rank_batches(stream, workers) == expected


@pytest.mark.parametrize("done", [1, 2, 3])
def test_resume_mid_epoch_gives_the_remaining_batches(shards, done):
    out, _ = shards
    full_stream = stream_of(out, 1, 0, batch=2, workers=2, buffer=3)
    full_stream.set_epoch(2)
    full = rank_batches(full_stream, 2)
    assert len(full) == 10 and sorted(sum(full, [])) != list(range(20))  # shuffled, 2 of 22 left over
    resumed = stream_of(out, 1, 0, batch=2, workers=2, buffer=3)
    resumed.set_epoch(2)
    resumed.skip = done * 2
    assert rank_batches(resumed, 2) == full[done:]


def test_the_torch_loader_takes_workers_in_turn(shards):
    out, _ = shards
    stream = stream_of(out, 1, 0, batch=2, workers=2, buffer=3)
    by_hand = rank_batches(stream, 2)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    assert [x.tolist() for x, _ in loader] == by_hand
    stream.skip = 3 * 2  # resumed after 3 batches: worker 0 now plays worker 1
    assert [x.tolist() for x, _ in DataLoader(stream, batch_size=None, num_workers=2)] == by_hand[3:]


def test_webdataset_reader_reads_the_shards(shards):
    wds = pytest.importorskip("webdataset")
    out, _ = shards
    rows = list(wds.WebDataset(str(out / "val-000000.tar"), shardshuffle=False).decode("pil").to_tuple("jpg", "cls"))
    val_ids = [sample for _, _, sample in listing(out.parent)][:4]  # val/ mirrors train/: the same ids, in order
    assert [int(sample_id(image)) for image, _ in rows] == val_ids
    assert [cls for _, cls in rows] == [0, 0, 0, 0]


def test_run_on_shards_resumes_exactly(tmp_path, shards):
    out, _ = shards
    assert main(["shard", str(out.parent), str(tmp_path / "s2"), "--per-shard", "6"]) == 0

    def exp(steps: int) -> Experiment:
        return Experiment.from_dict(
            {
                "name": "wds",
                "constraints": "feedback_alignment.yaml",
                "data": {"name": "webdataset", "root": str(tmp_path / "s2"), "image_size": 8, "shuffle_buffer": 4},
                "model": {"name": "convnet", "kwargs": {"channels": [4], "hidden": 8}},
                "train": {
                    "steps": steps,
                    "batch_size": 4,
                    "seed": 1,
                    "deterministic": True,
                    "log_every": 1,
                    "probe_every": 2,
                    "probe_batch": 4,
                    "plots": False,
                },
            }
        )

    assert len(build_data(exp(1).data).val) == 22
    (tmp_path / "s2" / "val-000001.tar").rename(tmp_path / "val-000001.tar")
    with pytest.raises(ConfigError, match="1 shard.* missing, e.g. val-000001.tar"):
        build_data(exp(1).data)
    (tmp_path / "val-000001.tar").rename(tmp_path / "s2" / "val-000001.tar")
    run_experiment(exp(6), tmp_path / "straight")  # 5 steps per epoch: the kill at 3 is mid-epoch 0
    run_experiment(exp(6), tmp_path / "cut", callbacks=[Kill(3)])
    run_experiment(exp(6), tmp_path / "cut", resume=True)
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
