"""Datasets (a registry; one class per dataset) and resumable loaders."""

# each module registers its datasets
from . import cognitive, imagefolder, neurogym_tasks, offline, sequential, synthetic, torchvision_sets, webdataset  # noqa: F401
from .registry import DATASETS, DataBundle, DatasetSource, DataSettings, build_data, register_dataset

__all__ = ["DATASETS", "DataBundle", "DataSettings", "DatasetSource", "build_data", "register_dataset"]
