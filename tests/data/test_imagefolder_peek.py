"""``ImageFolderSet.peek`` (biocircuits/data/imagefolder.py): the input shape and class count from the folder names
alone, equal to what ``build`` gives, without reading an image; a missing folder is the same ConfigError."""

import pytest

from biocircuits.config.experiment import DataSpec
from biocircuits.data import build_data
from biocircuits.data.imagefolder import ImageFolderSet
from biocircuits.data.registry import data_signature
from biocircuits.errors import ConfigError
from tests.train.helpers import write_imagefolder


def test_peek_equals_the_built_data(tmp_path):
    spec = DataSpec(
        name="imagefolder", root=str(write_imagefolder(tmp_path, classes=3, per_class=1, size=8)), image_size=16
    )
    bundle = build_data(spec)
    assert ImageFolderSet().peek(spec) == ((3, 16, 16), 3) == (tuple(bundle.input_shape), bundle.num_classes)


def test_peek_reads_no_image(tmp_path, monkeypatch):
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            (tmp_path / split / c / "x.JPEG").write_bytes(b"not an image")  # build would fail on it
    monkeypatch.setattr(ImageFolderSet, "build", lambda self, spec: pytest.fail("peek built the data"))
    spec = DataSpec(name="imagefolder", root=str(tmp_path))
    assert data_signature(spec) == ((3, 224, 224), 2)


def test_peek_names_a_missing_folder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ConfigError) as err:
        ImageFolderSet().peek(DataSpec(name="imagefolder", root=str(tmp_path)))
    assert err.value.key == "data.root" and "val" in str(err.value)
    (tmp_path / "val").mkdir()
    with pytest.raises(ConfigError) as err:  # train/ without class folders
        ImageFolderSet().peek(DataSpec(name="imagefolder", root=str(tmp_path)))
    assert err.value.key == "data.root" and "class folders" in str(err.value)
