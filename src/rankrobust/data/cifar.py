"""Reader for CIFAR-10 in its python-version batches (or the binary version).

The python batches are pickles. They are read with a restricted unpickler that only rebuilds
plain containers and numpy arrays: any other global in the stream (the way a hostile pickle runs
code) is refused before it is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _load_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        obj = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # any failure to parse is the same thing to the user: a bad file
        raise DataError(f"{path}: not a valid CIFAR-10 python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a valid CIFAR-10 python batch (no dict inside)")
    data = obj.get("data", obj.get(b"data"))
    labels = obj.get("labels", obj.get(b"labels"))
    if data is None or labels is None:
        raise DataError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels'")
    data = np.asarray(data)
    labels_arr = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels_arr.shape[0]:
        raise DataError(
            f"{path}: CIFAR-10 batch has data {data.shape} and {labels_arr.shape[0]} labels; "
            "expected (N, 3072) and N labels"
        )
    if labels_arr.size and (labels_arr.min() < 0 or labels_arr.max() > 9):
        raise DataError(f"{path}: CIFAR-10 labels outside 0..9")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels_arr


def _load_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw.size == 0 or raw.size % 3073:
        raise DataError(f"{path}: size {raw.size} is not a multiple of 3073 (truncated or corrupt)")
    rows = raw.reshape(-1, 3073)
    labels = rows[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{path}: CIFAR-10 labels outside 0..9")
    return rows[:, 1:].reshape(-1, 3, 32, 32), labels


def find_cifar_dir(root: Path) -> Path | None:
    """The folder holding the batches: ``root`` itself or its ``cifar-10-batches-{py,bin}``."""
    for cand in (root, root / "cifar-10-batches-py", root / "cifar-10-batches-bin"):
        if (cand / "test_batch").exists() or (cand / "test_batch.bin").exists():
            return cand
    return None


def read_cifar10(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the batches of ``split`` ('train' | 'test'): uint8 (N, 3, 32, 32), int64 (N,)."""
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    xs, ys = [], []
    for name in names:
        py, binary = folder / name, folder / f"{name}.bin"
        if py.exists():
            x, y = _load_python_batch(py)
        elif binary.exists():
            x, y = _load_binary_batch(binary)
        else:
            raise DataError(f"cifar10: missing batch {py} (expected {', '.join(names)})")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)
