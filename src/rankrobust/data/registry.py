"""The dataset catalogue and ``load_dataset``: one entry point, always float32 (N, C, H, W) in [0, 1].

A dataset is one module of this package that registers a :class:`DatasetInfo`: its shapes,
classes and pixel statistics, its loader, its ε scale and where to get it. The package imports
every module in it (``rankrobust.registries.import_submodules``), so a new dataset is one new
file; a module elsewhere registers its datasets when it is imported. The CLI, study files,
``rankrobust reproduce`` and the report read :data:`DATASETS`.

Every split is checked as it is loaded (:func:`check_arrays`): not empty, images of the
catalogue's shape, labels in range, pixels finite and in range. Nothing is clipped or cast
silently; files are read only if they are regular files (:mod:`rankrobust.data.files`).

The catalogue imports no torch (only :func:`load_dataset` does, when called): the command
line's help names the datasets without paying for it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rankrobust.errors import DataError
from rankrobust.registries import check_new, lookup

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "test")
DataDir = str | os.PathLike[str] | None
# (split, data_dir) → (images (N, C, H, W) uint8 in 0..255 or float32 in [0, 1], labels (N,))
Loader = Callable[[str, DataDir], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """Everything about one dataset: what a model needs to know (input shape, classes, pixel
    statistics), how to load a split and how to get the files.

    ``eps_scale``: a study preset writes its ε's at MNIST scale (0.3); on this dataset
    ``rankrobust reproduce`` divides them by ``eps_scale`` (Fashion-MNIST 3: 0.3 → 0.1;
    CIFAR-10 0.3 / (8/255) ≈ 9.4: 0.3 → 8/255). ``models``: the [FC, CNN] models of this
    dataset's studies, overriding a preset's; None: the preset's, else each family's
    default model (``rankrobust.models.default_models``).
    """

    name: str
    in_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    how_to_get: str
    load: Loader
    # nominal split sizes (for work estimates, rankrobust.work; a local copy may differ)
    train_size: int = 60_000
    test_size: int = 10_000
    eps_scale: float = 1.0
    models: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        shape, channels = self.in_shape, self.in_shape[0] if self.in_shape else 0
        if len(shape) != 3 or not all(isinstance(v, int) and v >= 1 for v in shape):
            raise ValueError(f"dataset {self.name!r}: in_shape must be (C, H, W), got {shape!r}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise ValueError(f"dataset {self.name!r}: num_classes must be ≥ 2, got {self.num_classes!r}")
        for key in ("mean", "std"):
            stats = getattr(self, key)
            if len(stats) not in (1, channels) or not all(math.isfinite(v) for v in stats):
                raise ValueError(f"dataset {self.name!r}: {key} must hold 1 or {channels} finite numbers")
        if min(self.std) <= 0 or not (math.isfinite(self.eps_scale) and self.eps_scale > 0):
            raise ValueError(f"dataset {self.name!r}: std and eps_scale must be > 0")
        if min(self.train_size, self.test_size) < 1 or not callable(self.load):
            raise ValueError(f"dataset {self.name!r}: needs a loader and sizes ≥ 1")


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add ``info`` to :data:`DATASETS` (ValueError on a name taken by another entry)."""
    check_new(DATASETS, info.name, info, "dataset")
    DATASETS[info.name] = info
    return info


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name``; DataError with a did-you-mean for an unknown name."""
    return lookup(DATASETS, name, "dataset", DataError)


def data_dirs(data_dir: DataDir, name: str) -> list[Path]:
    """The folders a loader searches for ``name``'s files under ``--data-dir``: the folder, its
    ``NAME``, ``NAME`` with underscores, ``raw`` and ``NAME/raw`` (none without a folder)."""
    dirs = []
    if data_dir is not None:
        root = Path(data_dir)
        dirs += [root, root / name, root / name.replace("-", "_"), root / "raw", root / name / "raw"]
    return list(dict.fromkeys(dirs))  # "mnist" has no "-": its two spellings are one folder


def check_arrays(
    name: str, split: str, x: np.ndarray, y: np.ndarray, where: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as uint8 or float32 images of the dataset's shape with in-range labels.

    Refused (DataError): an empty split; images of another shape than the catalogue's
    (C, H, W); labels outside 0..num_classes−1; integer pixels outside 0..255 (they are
    divided by 255); float pixels that are NaN, infinite or outside [0, 1]. Nothing is clipped
    or cast silently.
    """
    info = DATASETS[name]
    where = where or f"{name} {split}"
    if x.shape[0] == 0:
        raise DataError(f"{where}: the split is empty (0 images)")
    if tuple(x.shape[1:]) != info.in_shape or y.shape != (x.shape[0],):
        raise DataError(
            f"{where}: images {tuple(x.shape)} and labels {tuple(y.shape)}; expected "
            f"(N, {', '.join(map(str, info.in_shape))}) images and N labels"
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= info.num_classes:
        raise DataError(f"{where}: labels must be integers in 0..{info.num_classes - 1}")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{where}: images hold NaN or infinite pixel values")
        low, high = float(x.min()), float(x.max())
        if low < 0.0 or high > 1.0:
            raise DataError(f"{where}: float pixel values must lie in [0, 1], found [{low:g}, {high:g}]")
        return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)
    if not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{where}: images of dtype {x.dtype}; expected integers or floats")
    if x.dtype != np.uint8:
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise DataError(f"{where}: integer pixel values must lie in 0..255, found {low}..{high}")
    return x.astype(np.uint8, copy=False), y.astype(np.int64, copy=False)


def load_dataset_numpy(name: str, split: str, data_dir: DataDir = None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`load_dataset` but returns numpy arrays (uint8 or float32 images), checked
    by :func:`check_arrays`."""
    info = dataset_info(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
    x, y = info.load(split, data_dir)
    return check_arrays(name, split, x, y)


def load_dataset(name: str, split: str, data_dir: DataDir = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split as tensors.

    Returns ``x`` float32 (N, C, H, W) with values in [0, 1] and ``y`` int64 (N,), for any name
    in :data:`DATASETS`. Raises :class:`~rankrobust.errors.DataError` with one line saying where
    it looked and how to get the files when a dataset is missing, truncated or corrupt.
    """
    import torch  # here, not at the top: the catalogue stays light (see the module docstring)

    x, y = load_dataset_numpy(name, split, data_dir)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    xt = xt.float().div_(255.0) if xt.dtype == torch.uint8 else xt.float()
    return xt, torch.from_numpy(np.ascontiguousarray(y)).long()
