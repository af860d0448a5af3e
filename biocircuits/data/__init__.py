"""Datasets (a registry; one class per dataset) and resumable loaders."""

from .registry import DATASETS, DataBundle, DatasetSource, build_data, dataset_class, register_dataset

__all__ = ["DATASETS", "DataBundle", "DatasetSource", "build_data", "dataset_class", "register_dataset"]
