"""The ILSVRC (ImageNet) validation layouts besides class folders: a flat ``val/`` of ``ILSVRC2012_val_*.JPEG``
labelled by Kaggle's ``LOC_val_solution.csv`` or by the ILSVRC2012 devkit's ground truth (``meta.mat`` +
``ILSVRC2012_validation_ground_truth.txt``). Each label source is one reader in
[`LABEL_SOURCES`][biocircuits.data.ilsvrc.LABEL_SOURCES]."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from biocircuits.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LAYOUTS = (
    "the layouts that work: (1) ROOT/val/<wnid>/*.JPEG, class folders as in ROOT/train/; (2) a flat "
    "ROOT/val/*.JPEG with Kaggle's LOC_val_solution.csv in ROOT or a folder above it (or data.val_labels: "
    "PATH/LOC_val_solution.csv); (3) a flat ROOT/val/*.JPEG with the ILSVRC2012 devkit folder "
    "ILSVRC2012_devkit_t12 (data/meta.mat, data/ILSVRC2012_validation_ground_truth.txt) in ROOT or above "
    "(or data.val_labels: PATH/ILSVRC2012_devkit_t12)"
)
SEARCH_UP = 3  # Kaggle: ROOT = ILSVRC/Data/CLS-LOC, the CSV three folders up


def solution_csv(path: Path) -> dict[str, str]:
    """``LOC_val_solution.csv`` (columns ``ImageId``, ``PredictionString`` = ``"wnid x0 y0 x1 y1 wnid ..."``, one
    box per object, all of the image's class): {image id (file stem): wnid of its first box}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"ImageId", "PredictionString"} <= rows[0].keys():
        raise ConfigError(
            "not a LOC_val_solution.csv",
            file=str(path),
            key="data.val_labels",
            expected="columns ImageId,PredictionString",
            given=list(rows[0]) if rows else "no rows",
        )
    return {row["ImageId"]: row["PredictionString"].split()[0] for row in rows if row["PredictionString"].strip()}


def devkit(path: Path) -> dict[str, str]:
    """The ILSVRC2012 devkit: ``data/meta.mat``'s ``synsets`` (fields ILSVRC2012_ID, WNID, ..., num_children; the
    1,000 leaves have num_children 0) and ``data/ILSVRC2012_validation_ground_truth.txt`` (line i: the
    ILSVRC2012_ID of ``ILSVRC2012_val_{i:08d}``, i from 1): {image id: wnid}. Needs scipy."""
    from scipy.io import loadmat

    synsets = loadmat(str(path / "data" / "meta.mat"), squeeze_me=True)["synsets"]
    wnid_of = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    truth = (path / "data" / "ILSVRC2012_validation_ground_truth.txt").read_text().split()
    return {f"ILSVRC2012_val_{i:08d}": wnid_of[int(label)] for i, label in enumerate(truth, start=1)}


LABEL_SOURCES: dict[str, Callable[[Path], dict[str, str]]] = {
    "LOC_val_solution.csv": solution_csv,
    "ILSVRC2012_devkit_t12": devkit,
}


def find_labels(root: Path, given: str | None) -> Path | None:
    """``data.val_labels`` when set (a file or folder named as in
    [`LABEL_SOURCES`][biocircuits.data.ilsvrc.LABEL_SOURCES]), else the first label source found in ``root`` or up to
    [`SEARCH_UP`][biocircuits.data.ilsvrc.SEARCH_UP] folders above it."""
    if given is not None:
        path = Path(given).expanduser()
        if path.name not in LABEL_SOURCES or not path.exists():
            raise ConfigError(
                "data.val_labels names no label source",
                key="data.val_labels",
                given=given,
                expected=" or ".join(f"an existing PATH/{n}" for n in LABEL_SOURCES),
                suggestion=LAYOUTS,
            )
        return path
    for folder in [root, *root.resolve().parents[:SEARCH_UP]]:
        for name in LABEL_SOURCES:
            if (folder / name).exists():
                return folder / name
    return None


class LabelledFiles(Dataset):
    """Images listed with their class index: ``samples`` [(path, target)], ``targets``, ``classes``; each item is
    ``(transform(loader(path)), target)``, as `torchvision.datasets.ImageFolder` gives."""

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], transform: Any, loader: Any) -> None:
        self.samples, self.classes = samples, classes
        self.targets = [t for _, t in samples]
        self.transform, self.loader = transform, loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        image = self.loader(path)
        return (self.transform(image) if self.transform is not None else image), target


def images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def flat_val(
    folder: Path, classes: list[str], labels_given: str | None, transform: Any, loader: Any
) -> tuple[LabelledFiles, str]:
    """The flat validation folder ``folder`` labelled by the label source found by
    [`find_labels`][biocircuits.data.ilsvrc.find_labels], with class indices from ``classes`` (train's sorted class
    folders); returns it and the source's name. An image without a label, or a label that is not one of ``classes``, is
    a ConfigError naming it."""
    source = find_labels(folder.parent, labels_given)
    if source is None:
        raise ConfigError(
            f"{folder} holds images but no class folders, and no validation labels were found",
            key="data.root",
            given=str(folder.parent),
            suggestion=LAYOUTS,
        )
    labels, index = LABEL_SOURCES[source.name](source), {c: i for i, c in enumerate(classes)}
    samples = []
    for path in images_in(folder):
        wnid = labels.get(path.stem)
        if wnid is None:
            raise ConfigError(
                f"{path.name} has no label in {source}",
                key="data.val_labels",
                given=str(source),
                suggestion="use the label file of this validation set",
            )
        if wnid not in index:
            raise ConfigError(
                f"{path.name} is labelled {wnid}, which is not a class folder of train/",
                key="data.val_labels",
                given=str(source),
                expected=f"one of {len(classes)} classes",
            )
        samples.append((str(path), index[wnid]))
    return LabelledFiles(samples, classes, transform, loader), source.name


__all__ = ["LABEL_SOURCES", "LAYOUTS", "LabelledFiles", "devkit", "find_labels", "flat_val", "solution_csv"]
