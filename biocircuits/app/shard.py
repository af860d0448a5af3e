"""``biocircuits shard IMAGEFOLDER OUT``: an image folder (``train/<class>/``, and ``val/`` in any layout that
``data.name: imagefolder`` reads) written as WebDataset tar shards for ``data.name: webdataset``."""

from __future__ import annotations

import argparse
from pathlib import Path

from biocircuits.data.imagefolder import image_folder, validation_set
from biocircuits.data.shards import write_shards
from biocircuits.errors import ConfigError


def shard_folder(root: Path, out: Path, per_shard: int, seed: int, val_labels: str | None = None) -> dict:
    """Shard ``root``'s train/ and val/ into ``out``
    ([`biocircuits.data.shards.write_shards`][biocircuits.data.shards.write_shards]); the class indices are those
    ``imagefolder`` gives (train/'s sorted class folders). The files' bytes are copied, not decoded: a damaged image is
    reported when a run decodes it. Returns the index."""
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ConfigError(
                f"no {split} folder under {root}",
                key="IMAGEFOLDER",
                given=str(root),
                suggestion="ROOT/train/<class>/*.JPEG and ROOT/val/ (class folders or flat ILSVRC)",
            )
    if (out / "index.json").exists():
        raise ConfigError(
            f"{out} already holds shards (index.json)",
            key="OUT",
            given=str(out),
            suggestion="choose another OUT or remove the old shards",
        )
    train = image_folder(root / "train", None)
    val, _ = validation_set(root / "val", train.classes, val_labels, None)
    return write_shards(list(train.samples), list(val.samples), train.classes, out, per_shard, seed)


def cmd_shard(args: argparse.Namespace) -> int:
    index = shard_folder(Path(args.imagefolder), Path(args.out), args.per_shard, args.seed, args.val_labels)
    n_train = sum(s["samples"] for s in index["train"])
    n_val = sum(s["samples"] for s in index["val"])
    print(
        f"{n_train} train samples in {len(index['train'])} shards, {n_val} val samples in {len(index['val'])} "
        f"shards, {len(index['classes'])} classes -> {args.out} (data: {{name: webdataset, root: {args.out}}})"
    )
    return 0


def add_shard_command(sub: argparse._SubParsersAction, positive) -> None:
    """The ``shard`` parser."""
    sh = sub.add_parser("shard", help="write an image folder as WebDataset tar shards (data.name: webdataset)")
    sh.add_argument("imagefolder", metavar="IMAGEFOLDER", help="a folder with train/ and val/")
    sh.add_argument("out", metavar="OUT", help="the shard folder to write")
    sh.add_argument("--per-shard", type=positive(int), default=5000, help="samples per shard (default 5000)")
    sh.add_argument("--seed", type=int, default=0, help="the seed of the train samples' order (default 0)")
    sh.add_argument(
        "--val-labels",
        default=None,
        help="LOC_val_solution.csv or the ILSVRC2012 devkit, for a flat val/ (default: found in IMAGEFOLDER or above)",
    )
    sh.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sh.set_defaults(func=cmd_shard)
