"""``data.name: webdataset``: training images streamed from the tar shards of [`shards`][biocircuits.data.shards]
(sequential reads: a shared file system serves a few large files well, a million small ones badly), split per rank and
per loader worker, with exact epochs and an exact mid-epoch resume; validation images read by offset.

Epoch semantics (epoch e, W ranks, K = max(1, data.num_workers) workers per rank, per-rank batch b, N samples):

1. The shards are permuted by ``torch.randperm(S, generator=seed + e)`` (``train.seed``); their samples, in stored
   order, make one sequence of N.
2. The sequence is cut into W * K streams of c = floor(N / (W K b)) * b samples each; stream s = r K + k (rank r,
   logical worker k) is samples [s c, (s + 1) c). The N - W K c samples left over (fewer than W K b) are not seen
   this epoch; others are left over in other epochs, as the shard order changes.
3. Each stream goes through a shuffle buffer of ``data.shuffle_buffer`` samples seeded by (seed, e, s), then into
   c / b batches. Rank r's batch j comes from its logical worker j mod K (the order PyTorch's loader takes
   workers in), so a rank has K c / b batches per epoch and every rank the same.
4. Resuming after rank r consumed B batches of epoch e: loader worker p plays logical worker (p + B) mod K, and
   logical worker k skips its first ceil((B - k) / K) batches without decoding them; the batches that follow are
   those of the run that was not interrupted. (Random augmentation draws follow the loader's worker seeds, as
   for image folders.)

Changing W, K or b changes which samples form a batch (as with any sharded reader), not the data seen in total;
resume with the W, K and b of the run (on another layout the interrupted epoch is not the same epoch).
Workers are restarted each epoch (``persistent_workers`` does not apply) so that each learns its epoch."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from biocircuits.errors import ConfigError, DataError

from .device_decode import EncodedBatch, EncodedCollate
from .imagefolder import reference_transforms
from .loaders import StreamingDataset
from .registry import DataBundle, DatasetSource, register_dataset
from .shards import member_table, read_index, samples_in

if TYPE_CHECKING:
    from PIL import Image


def decode(data: bytes, where: str) -> Image.Image:
    """An image's bytes as an RGB PIL image; bytes PIL cannot decode raise [`DataError`][biocircuits.errors.DataError]
    naming ``where``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"unreadable image ({type(err).__name__}: {str(err)[:120]})",
            file=where,
            suggestion="re-shard from an image folder without the damaged file",
        ) from None


def shuffled(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """A shuffle buffer: fill ``size`` items, then for each new item yield a random one of the buffer and put the new
    one in its place; at the end yield the rest in a random order. ``size`` <= 1: ``items`` unchanged."""
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer


class ShardStream(StreamingDataset):
    """The training shards as streams of batches (module docstring: the epoch semantics). ``epoch`` and ``skip``
    (samples of this rank's share already consumed) are set by the trainer, as on a sampler."""

    def __init__(self, root: Path, shards: list[dict[str, Any]], transform: Any, buffer: int) -> None:
        self.root, self.shards, self.transform, self.buffer = root, shards, transform, buffer
        self.counts = [int(s["samples"]) for s in shards]
        self.epoch = self.skip = 0
        self.world, self.rank, self.batch, self.workers, self.seed = 1, 0, 1, 1, 0

    def __len__(self) -> int:  # samples (the loader's length is in batches)
        return sum(self.counts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def stream_size(self) -> int:
        """c: the samples of one stream per epoch."""
        return len(self) // (self.world * self.workers * self.batch) * self.batch

    def batches_per_rank(self) -> int:
        return self.workers * self.stream_size() // self.batch

    def raw(self, stream: int) -> Iterator[tuple[bytes, int, str]]:
        """Stream ``stream``'s samples of this epoch, undecoded: (bytes, class index, shard path)."""
        c = self.stream_size()
        start, end = stream * c, (stream + 1) * c
        order = torch.randperm(len(self.shards), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        first = 0
        for i in order.tolist():
            last = first + self.counts[i]
            if last > start and first < end:
                path = self.root / self.shards[i]["file"]
                taken = samples_in(path, skip=max(start - first, 0))
                for _, sample in zip(range(min(end, last) - max(start, first)), taken, strict=False):
                    yield (*sample, str(path))
                taken.close()  # the shard's file
            first = last
            if first >= end:
                return

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        return self.batches(*((info.id, info.num_workers) if info is not None else (0, 1)))

    def batches(self, physical: int, workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches loader worker ``physical`` of ``workers`` yields: (images (b, C, H, W) or, under
        ``data.decode: gpu``, an [`EncodedBatch`][biocircuits.data.device_decode.EncodedBatch]; targets (b,))."""
        done = self.skip // self.batch  # batches this rank consumed in this epoch
        k = (physical + done) % workers
        skip = max(0, -(-(done - k) // workers))
        rng = random.Random(f"{self.seed}/{self.epoch}/{self.rank * workers + k}")
        samples = shuffled(self.raw(self.rank * workers + k), self.buffer, rng)
        for j in range(self.stream_size() // self.batch):
            chunk = [next(samples) for _ in range(self.batch)]
            if j < skip:
                continue
            targets = torch.tensor([target for _, target, _ in chunk])
            if isinstance(self.transform, EncodedCollate):  # data.decode: gpu: the bytes go to the device
                data = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d, _, _ in chunk]
                yield EncodedBatch(data, [where for _, _, where in chunk], self.transform.crop), targets
                continue
            yield torch.stack([self.transform(decode(data, where)) for data, _, where in chunk]), targets

    def loader(self, batch_size: int, *, world: int, rank: int, seed: int, spec: Any) -> tuple[Any, Any]:
        self.world, self.rank, self.batch, self.seed = world, rank, batch_size, seed
        self.workers = max(1, spec.num_workers)
        return StreamLoader(self, spec), self


class StreamLoader:
    """The DataLoader over a [`ShardStream`][biocircuits.data.webdataset.ShardStream] (each item one batch); its length
    is the batches this rank has left in the epoch."""

    def __init__(self, stream: ShardStream, spec: Any) -> None:
        self.stream = stream
        extra = (
            {"prefetch_factor": spec.prefetch_factor}
            if spec.num_workers and getattr(spec, "prefetch_factor", None)
            else {}
        )
        self.loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=spec.num_workers,
            pin_memory=spec.pin_memory and torch.cuda.is_available(),
            **extra,
        )

    def __len__(self) -> int:
        return self.stream.batches_per_rank() - self.stream.skip // self.stream.batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.loader)


class ShardImages(Dataset):
    """Shards read by offset (validation, probes): sample i is the i-th of the shards in index order."""

    def __init__(self, root: Path, shards: list[dict[str, Any]], transform: Any) -> None:
        self.transform = transform
        self.rows = [(root / s["file"], *row) for s in shards for row in member_table(root / s["file"])]
        self.targets = [row[3] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, offset, size, target = self.rows[index]
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        return self.transform(decode(data, f"{path} (sample {index})")), target


@register_dataset
class WebDatasetShards(DatasetSource):
    """Shards written by ``biocircuits shard`` under ``data.root``; ``image_size`` (default 224) is the crop size,
    with the torchvision reference transforms; ``shuffle_buffer`` samples shuffled per stream; ``decode: gpu``
    hands the training batches over undecoded ([`device_decode`][biocircuits.data.device_decode])."""

    name = "webdataset"

    def build(self, spec) -> DataBundle:
        if spec.root is None:
            raise ConfigError(
                "webdataset needs data.root",
                key="data.root",
                given=None,
                has_given=True,
                expected="a folder written by: biocircuits shard IMAGEFOLDER OUT",
            )
        root = Path(spec.root).expanduser()
        index = read_index(root)
        missing = [s["file"] for s in index["train"] + index["val"] if not (root / s["file"]).is_file()]
        if missing:
            raise ConfigError(
                f"{len(missing)} shard(s) listed in index.json are missing, e.g. {missing[0]}",
                key="data.root",
                given=str(root),
                suggestion="copy the whole shard folder, or re-shard",
            )
        crop = spec.image_size or 224
        train_tf, val_tf = reference_transforms(crop)
        on_device = EncodedCollate(crop) if spec.decode == "gpu" else None  # batches decoded on the device
        train = ShardStream(root, index["train"], on_device or train_tf, spec.shuffle_buffer)
        val = ShardImages(root, index["val"], val_tf)
        return DataBundle(
            train,
            val,
            len(index["classes"]),
            (3, crop, crop),
            classes=tuple(index["classes"]),
            details={
                "image_size": crop,
                "val_layout": "shards",
                "root": str(root.resolve()),
                "train_shards": len(index["train"]),
                "val_shards": len(index["val"]),
            },
        )
