"""WebDataset shards of an image folder: plain tar files whose members ``KEY.jpg`` (the image file's bytes, not
re-encoded) and ``KEY.cls`` (the class index as text) make one sample each, and ``index.json`` listing the shards,
their sample counts and the class names. Any WebDataset reader reads them; [`webdataset`][biocircuits.data.webdataset]
reads them exactly.

Layout written by [`write_shards`][biocircuits.data.shards.write_shards] (``biocircuits shard IMAGEFOLDER OUT``)::

    OUT/index.json                      {"format": "biocircuits-webdataset", "version": 1, "classes": [...],
                                         "train": [{"file": "train-000000.tar", "samples": n}, ...], "val": [...]}
    OUT/train-000000.tar ...            train samples in a seeded random order (so that a shard mixes classes)
    OUT/val-000000.tar ...              validation samples in file order
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biocircuits.core.atomic import atomic_write_json
from biocircuits.errors import ConfigError

FORMAT, VERSION = "biocircuits-webdataset", 1
IMAGE_EXTENSIONS = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp", ".bmp": "bmp"}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed metadata: the same input gives the same bytes
    tar.addfile(info, io.BytesIO(data))


def write_split(samples: list[tuple[str, int]], out: Path, split: str, per_shard: int) -> list[dict[str, Any]]:
    """Write ``samples`` [(image path, class index)] in order as ``OUT/{split}-NNNNNN.tar`` of ``per_shard`` samples
    (the last may hold fewer); sample i's key is ``{split}_{i:08d}``. Returns the shards' index entries."""
    shards = []
    for first in range(0, len(samples), per_shard):
        name = f"{split}-{first // per_shard:06d}.tar"
        part = out / f".{name}.tmp"
        with tarfile.open(part, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i, (path, target) in enumerate(samples[first : first + per_shard], start=first):
                ext = IMAGE_EXTENSIONS.get(Path(path).suffix.lower())
                if ext is None:
                    raise ConfigError(f"cannot shard {path}", expected=" | ".join(IMAGE_EXTENSIONS), given=path)
                _add(tar, f"{split}_{i:08d}.{ext}", Path(path).read_bytes())
                _add(tar, f"{split}_{i:08d}.cls", str(target).encode())
        part.replace(out / name)
        shards.append({"file": name, "samples": len(samples[first : first + per_shard])})
    return shards


def write_shards(
    train: list[tuple[str, int]],
    val: list[tuple[str, int]],
    classes: list[str],
    out: Path,
    per_shard: int = 5000,
    seed: int = 0,
) -> dict[str, Any]:
    """Shard a dataset given as lists of (image path, class index): train shuffled by ``random.Random(seed)``, val
    in order; writes ``index.json`` last (a folder without it is not a finished set). Returns the index."""
    if per_shard < 1:
        raise ConfigError("shards hold at least one sample", key="--per-shard", given=per_shard, expected=">= 1")
    out.mkdir(parents=True, exist_ok=True)
    order = list(train)
    random.Random(seed).shuffle(order)
    index = {
        "format": FORMAT,
        "version": VERSION,
        "classes": list(classes),
        "seed": seed,
        "per_shard": per_shard,
        "train": write_split(order, out, "train", per_shard),
        "val": write_split(list(val), out, "val", per_shard),
    }
    atomic_write_json(out / "index.json", index)
    return index


def read_index(root: Path) -> dict[str, Any]:
    """``root/index.json``, checked; a folder without one is a ConfigError that says how to make it."""
    path = root / "index.json"
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"no shard index at {path} ({type(err).__name__})",
            key="data.root",
            given=str(root),
            suggestion="write shards with: biocircuits shard IMAGEFOLDER OUT",
        ) from None
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ConfigError(
            "not a biocircuits shard index",
            file=str(path),
            key="format",
            expected=f"{FORMAT} version {VERSION}",
            given=(index.get("format"), index.get("version")),
        )
    return index


def samples_in(path: Path, skip: int = 0) -> Iterator[tuple[bytes, int]]:
    """The samples of one shard in stored order as (image bytes, class index), after the first ``skip`` (whose
    image bytes are not read: tar seeks past them)."""
    with tarfile.open(path, "r:") as tar:
        image, n = None, 0
        for member in tar:
            if member.name.endswith(".cls"):
                if n >= skip:
                    yield image, int(tar.extractfile(member).read())
                image, n = None, n + 1
            elif n >= skip:
                image = tar.extractfile(member).read()


def member_table(path: Path) -> list[tuple[int, int, int]]:
    """One shard's samples as (offset of the image's data, its size, class index): what random access reads."""
    rows = []
    with tarfile.open(path, "r:") as tar:
        image = (0, 0)
        for member in tar:
            if member.name.endswith(".cls"):
                rows.append((*image, int(tar.extractfile(member).read())))
            else:
                image = (member.offset_data, member.size)
    return rows


__all__ = ["member_table", "read_index", "samples_in", "write_shards", "write_split"]
