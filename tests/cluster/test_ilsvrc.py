"""The ILSVRC validation layouts (``biocircuits/data/ilsvrc.py``, ``imagefolder.py``): a flat ``val/`` labelled by
Kaggle's ``LOC_val_solution.csv`` or by the devkit, the error that lists the layouts, and ``dataset.json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from biocircuits.config.experiment import DataSpec, Experiment
from biocircuits.data import build_data
from biocircuits.errors import ConfigError
from biocircuits.train import run_experiment

WNIDS = ["n01440764", "n01443537"]
VAL_WNIDS = ["n01443537", "n01440764", "n01443537", "n01443537", "n01440764"]  # val image i + 1's class


def jpeg(path: Path, seed: int, size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=85)


def ilsvrc_tree(root: Path, per_class: int = 3) -> Path:
    """root/train/<wnid>/*.JPEG and a flat root/val/ILSVRC2012_val_0000000{1..5}.JPEG (no labels)."""
    for c, wnid in enumerate(WNIDS):
        for i in range(per_class):
            jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", 10 * c + i)
    for i in range(len(VAL_WNIDS)):
        jpeg(root / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG", 100 + i)
    return root


def write_solution(path: Path) -> Path:
    rows = [f"ILSVRC2012_val_{i + 1:08d},{w} 1 2 10 12 {w} 3 4 8 9 " for i, w in enumerate(VAL_WNIDS)]
    path.write_text("ImageId,PredictionString\n" + "\n".join(reversed(rows)) + "\n")  # any row order
    return path


def write_devkit(folder: Path) -> Path:
    """meta.mat with the two leaves (ILSVRC2012_ID 1 -> n01440764, 2 -> n01443537; their IDs swapped against the
    sorted order on purpose) and a non-leaf, and the ground-truth lines of the five val images."""
    from scipy.io import savemat

    ids = {"n01440764": 2, "n01443537": 1}
    fields = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
    synsets = np.array([(ids[w], w, "x", "y", 0) for w in WNIDS] + [(1001, "n00000001", "z", "y", 2)], dtype=fields)
    (folder / "data").mkdir(parents=True)
    savemat(str(folder / "data" / "meta.mat"), {"synsets": synsets})
    (folder / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in VAL_WNIDS))
    return folder


def expected_targets() -> list[int]:
    return [WNIDS.index(w) for w in VAL_WNIDS]  # class index = position among train's sorted class folders


def test_flat_val_with_loc_solution_csv_in_root(tmp_path):
    root = ilsvrc_tree(tmp_path / "imnet")
    write_solution(root / "LOC_val_solution.csv")
    data = build_data(DataSpec(name="imagefolder", root=str(root), image_size=16))
    assert data.val.targets == expected_targets() and len(data.val) == 5
    assert data.classes == tuple(WNIDS) and data.details["val_layout"] == "LOC_val_solution.csv"
    x, y = data.val[0]
    assert tuple(x.shape) == (3, 16, 16) and y == expected_targets()[0]


def test_kaggle_layout_finds_the_csv_three_folders_up(tmp_path):
    root = ilsvrc_tree(tmp_path / "kaggle" / "ILSVRC" / "Data" / "CLS-LOC")
    write_solution(tmp_path / "kaggle" / "LOC_val_solution.csv")
    assert build_data(DataSpec(name="imagefolder", root=str(root))).val.targets == expected_targets()


def test_devkit_ground_truth_named_by_val_labels(tmp_path):
    root = ilsvrc_tree(tmp_path / "imnet")
    kit = write_devkit(tmp_path / "elsewhere" / "ILSVRC2012_devkit_t12")
    data = build_data(DataSpec(name="imagefolder", root=str(root), val_labels=str(kit)))
    assert data.val.targets == expected_targets() and data.details["val_layout"] == "ILSVRC2012_devkit_t12"


def test_flat_val_without_labels_lists_the_layouts_that_work(tmp_path):
    root = ilsvrc_tree(tmp_path / "imnet")
    with pytest.raises(ConfigError) as err:
        build_data(DataSpec(name="imagefolder", root=str(root)))
    text = str(err.value)
    assert "no validation labels" in text
    for layout in ("ROOT/val/<wnid>/*.JPEG", "LOC_val_solution.csv", "ILSVRC2012_devkit_t12", "data.val_labels"):
        assert layout in text


def test_unlabelled_image_and_wrong_label_source_are_named(tmp_path):
    root = ilsvrc_tree(tmp_path / "imnet")
    write_solution(root / "LOC_val_solution.csv")
    jpeg(root / "val" / "ILSVRC2012_val_00000009.JPEG", 7)
    with pytest.raises(ConfigError, match="ILSVRC2012_val_00000009.JPEG has no label"):
        build_data(DataSpec(name="imagefolder", root=str(root)))
    with pytest.raises(ConfigError, match="names no label source"):
        build_data(DataSpec(name="imagefolder", root=str(root), val_labels=str(root / "labels.txt")))


def test_run_folder_records_the_real_classes_and_shape(tmp_path):
    root = ilsvrc_tree(tmp_path / "imnet", per_class=4)
    write_solution(root / "LOC_val_solution.csv")
    exp = Experiment.from_dict(
        {
            "name": "flat",
            "constraints": "sign_symmetry.yaml",
            "data": {"name": "imagefolder", "root": str(root), "image_size": 16},
            "model": {"name": "convnet", "kwargs": {"channels": [4], "hidden": 8}},
            "train": {"steps": 2, "batch_size": 4, "log_every": 1, "probe_every": None, "plots": False},
        }
    )
    summary = run_experiment(exp, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert record["num_classes"] == record["model_num_classes"] == summary["num_classes"] == 2
    assert record["classes"] == WNIDS and record["input_shape"] == summary["input_shape"] == [3, 16, 16]
    assert record["image_size"] == 16 and record["val_layout"] == "LOC_val_solution.csv"
    assert (record["train_samples"], record["val_samples"]) == (8, 5)
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert config.startswith("# data.shape, data.num_classes") and "dataset.json" in config.splitlines()[0]
