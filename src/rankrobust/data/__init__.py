"""Datasets: ``load_dataset(name, split, data_dir=None) -> (x, y)``, x float32 in [0, 1].

Every module of this package is imported here, and each dataset module registers its
:class:`DatasetInfo` (see :mod:`rankrobust.data.registry`): a new dataset is one new file.
"""

from rankrobust.data.registry import (
    DATASETS,
    DatasetInfo,
    data_dirs,
    dataset_info,
    load_dataset,
    register_dataset,
)
from rankrobust.registries import import_plugins, import_submodules

import_submodules(__name__, __path__)
import_plugins()

__all__ = ["DATASETS", "DatasetInfo", "data_dirs", "dataset_info", "load_dataset", "register_dataset"]
