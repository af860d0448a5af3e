"""Data-path throughput: decode + augment images/s of ONE worker (one process, one thread) at the training crop
(default 224), for each way biocircuits can feed a run, on generated ImageNet-sized JPEGs (default 500x375):

- ``imagefolder_pil``: ``data.name: imagefolder`` (PIL decode + the torchvision reference train transforms);
- ``pil_decode_only``: the PIL decode alone (what the transforms add is the difference);
- ``shards_pil``: ``data.name: webdataset`` (tar shards read in sequence, then the same PIL path);
- ``torchvision_io_cpu``: ``torchvision.io.decode_jpeg`` on the CPU + the same augmentation on tensors;
- ``decode_gpu`` (with a GPU only): ``data.decode: gpu`` -- a worker only reads the files; the batch is decoded and
  augmented on the GPU (images/s of the GPU's decode, not of a worker).

    python benchmarks/data_throughput.py --json data.json        # about a minute on one core
    python benchmarks/data_throughput.py --smoke                 # a few seconds: the test suite's check

A GPU training at G images/s needs about G / (images/s of one worker) loader workers on a CPU path; a run's
``data_share`` (train rows) and "data wait" (log lines) show whether the loader keeps up."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from biocircuits.app.shard import shard_folder
from biocircuits.data.device_decode import EncodedBatch, ReadBytes
from biocircuits.data.imagefolder import checked_loader, image_folder, reference_transforms
from biocircuits.data.shards import read_index
from biocircuits.data.webdataset import ShardStream


def write_jpegs(root: Path, count: int, size: tuple[int, int], classes: int = 4) -> Path:
    """``count`` JPEGs (quality 90) of smooth random scenes plus noise, ``size`` = (width, height), in an image
    folder root/{train,val}/class_k/ (val: one image per class)."""
    rng = np.random.default_rng(0)
    for i in range(count + classes):
        split, c = ("train", i % classes) if i < count else ("val", i - count)
        coarse = rng.integers(0, 255, (size[1] // 16 + 1, size[0] // 16 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize(size, Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 12, (size[1], size[0], 3))
        folder = root / split / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"img_{i}.JPEG", quality=90)
    return root


def rate(items: Iterable[Any], count: int) -> float:
    """Images per second of consuming ``items`` (``count`` images in all)."""
    t0 = time.perf_counter()
    for _ in items:
        pass
    return count / (time.perf_counter() - t0)


def cpu_paths(root: Path, shards: Path, crop: int) -> dict[str, Callable[[], float]]:
    train_tf, _ = reference_transforms(crop)
    folder = image_folder(root / "train", train_tf)
    paths = [p for p, _ in folder.samples]
    n = len(paths)
    stream = ShardStream(shards, read_index(shards)["train"], train_tf, buffer=0)
    stream.batch = 1  # one image per item: one worker's stream, no batching cost
    io_batch = EncodedBatch([ReadBytes()(p)[0] for p in paths[:1]], paths[:1], crop)

    def tensor_path() -> Iterable[torch.Tensor]:
        for path in paths:
            io_batch.data = [ReadBytes()(path)[0]]
            yield io_batch.to("cpu")

    return {
        "imagefolder_pil": lambda: rate((folder[i] for i in range(n)), n),
        "pil_decode_only": lambda: rate((checked_loader(p) for p in paths), n),
        "shards_pil": lambda: rate(stream.batches(0, 1), stream.batches_per_rank()),
        "torchvision_io_cpu": lambda: rate(tensor_path(), n),
    }


def gpu_path(root: Path, crop: int, batch: int) -> float:
    """Images/s of ``data.decode: gpu``'s device side: the files read once, then batches decoded on the GPU."""
    paths = [p for p, _ in image_folder(root / "train", None).samples]
    data = [ReadBytes()(p)[0] for p in paths]
    batches = [EncodedBatch(data[i : i + batch], paths[i : i + batch], crop) for i in range(0, len(data), batch)]
    batches[0].to("cuda")  # warm-up: nvJPEG handles
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in batches:
        b.to("cuda")
    torch.cuda.synchronize()
    return len(data) / (time.perf_counter() - t0)


def measure_paths(args: argparse.Namespace) -> dict[str, Any]:
    """images/s of every CPU path (and the GPU decode when a CUDA device is present) on freshly written JPEGs."""
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpegs(Path(tmp) / "images", args.images, (args.width, args.height))
        shard_folder(root, Path(tmp) / "shards", per_shard=max(1, args.images // 4), seed=0)
        for name, measure in cpu_paths(root, Path(tmp) / "shards", args.crop).items():
            rows[name] = {"images_per_s": measure(), "where": "one CPU worker"}
        if torch.cuda.is_available():
            rows["decode_gpu"] = {"images_per_s": gpu_path(root, args.crop, args.batch), "where": "the GPU"}
        else:
            rows["decode_gpu"] = {"images_per_s": None, "where": "not run: no CUDA device"}
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=256, help="train images generated (default 256)")
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--batch", type=int, default=64, help="GPU decode batch")
    p.add_argument("--smoke", action="store_true", help="8 images of 64x48, crop 32: checks the script runs")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.smoke:
        args.images, args.width, args.height, args.crop, args.batch = 8, 64, 48, 32, 4
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one worker = one process, one thread (restored after: main may run in-process)
    try:
        rows = measure_paths(args)
    finally:
        torch.set_num_threads(threads)
    print(f"decode + augment, {args.width}x{args.height} JPEG -> {args.crop}x{args.crop}, {args.images} images")
    print("| path | images/s | where |\n| --- | ---: | --- |")
    for name, r in rows.items():
        ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        print(f"| {name} | {ips} | {r['where']} |", flush=True)
    result = {"args": vars(args), "torch": torch.__version__, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
