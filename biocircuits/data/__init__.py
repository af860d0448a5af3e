"""Datasets (a registry; one class per dataset) and resumable loaders."""

from . import imagefolder, offline, synthetic, torchvision_sets, webdataset  # noqa: F401  (each module registers its datasets)
from .registry import DATASETS, DataBundle, DatasetSource, DataSettings, build_data, register_dataset

__all__ = ["DATASETS", "DataBundle", "DataSettings", "DatasetSource", "build_data", "register_dataset"]
