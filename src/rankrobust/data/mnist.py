"""MNIST and Fashion-MNIST from their four IDX files (``.gz`` or raw; read by :mod:`.idx`).

The files are looked for under ``--data-dir`` (:func:`~rankrobust.data.registry.data_dirs`);
Fashion-MNIST without ``--data-dir`` also in Debian's ``dataset-fashion-mnist`` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rankrobust.data.idx import read_idx
from rankrobust.data.registry import (
    DATASETS,
    DataDir,
    DatasetInfo,
    check_arrays,
    data_dirs,
    register_dataset,
)
from rankrobust.errors import DataError

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    found = []
    for stem in IDX_NAMES[split]:
        cands = [folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")]
        hit = next((c for c in cands if c.exists()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def load_idx_dataset(name: str, split: str, folders: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """``split`` of dataset ``name`` from the first of ``folders`` that holds its IDX pair;
    DataError saying where it looked and how to get the files when none does."""
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
        f"in {where}; {info.how_to_get}"
    )


def load_mnist(split: str, data_dir: DataDir = None) -> tuple[np.ndarray, np.ndarray]:
    return load_idx_dataset("mnist", split, data_dirs(data_dir, "mnist"))


def load_fashion_mnist(split: str, data_dir: DataDir = None) -> tuple[np.ndarray, np.ndarray]:
    dirs = data_dirs(data_dir, "fashion-mnist")
    if data_dir is None:
        dirs.append(FASHION_MNIST_SYSTEM_DIR)
    return load_idx_dataset("fashion-mnist", split, dirs)


register_dataset(DatasetInfo(
    name="mnist", in_shape=(1, 28, 28), num_classes=10, mean=(0.1307,), std=(0.3081,),
    how_to_get="put the four MNIST IDX files (train-images-idx3-ubyte.gz, ...) in --data-dir",
    load=load_mnist,
))
register_dataset(DatasetInfo(
    name="fashion-mnist", in_shape=(1, 28, 28), num_classes=10, mean=(0.2860,), std=(0.3530,),
    how_to_get="install Debian's package (sudo apt-get install dataset-fashion-mnist) or put the "
    "four Fashion-MNIST IDX .gz files in --data-dir",
    load=load_fashion_mnist,
    eps_scale=3.0,  # 0.3 → 0.1, Fashion-MNIST's usual training budget
))
