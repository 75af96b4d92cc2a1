"""Datasets: ``load_dataset(name, split, data_dir=None) -> (x, y)``, x float32 in [0, 1]."""

from rankrobust.data.registry import DATASETS, DatasetInfo, dataset_info, load_dataset

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "load_dataset"]
