"""Reader for CIFAR-10 in its python-version batches (or the binary version).

The python batches are pickles. They are read with a restricted unpickler that only rebuilds
plain containers and numpy arrays: any other global in the stream (the way a hostile pickle runs
code) is refused before it is called. Arrays are rebuilt only the way numpy pickles them
(``_reconstruct`` then ``__setstate__`` with the raw bytes, which must all be in the file): a
direct ``ndarray(shape, dtype, buffer, offset, strides)`` call, the way a 200-byte file declares a
stride-0 view of many GB, is refused. Sizes are bounded too: a batch file is at most
:data:`MAX_BATCH_BYTES`; no array it rebuilds may hold more than a batch's declared size,
:data:`MAX_BATCH_ITEMS` = 10,000 × 3,072 values; and ``data`` must be a C-contiguous uint8
(N, 3072) array that is stored in full, with N ≤ 10,000 integer labels, all checked before
anything is copied or reshaped.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.data.files import MiB, read_regular
from rankrobust.data.registry import DataDir, DatasetInfo, data_dirs, register_dataset
from rankrobust.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
MAX_BATCH_BYTES = 64 * MiB  # a CIFAR-10 batch is 31 MB (10,000 images of 3,072 bytes)
BATCH_ROWS, ROW_SIZE = 10_000, 3 * 32 * 32  # a CIFAR-10 batch as declared: 10,000 images
MAX_BATCH_ITEMS = BATCH_ROWS * ROW_SIZE
EPS_SCALE = 0.3 / (8 / 255)  # ≈ 9.4: MNIST ε 0.3 ↔ CIFAR-10 ε 8/255
HOW_TO_GET = "extract cifar-10-python.tar.gz (the python-version batches) into --data-dir"
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}
_ALLOWED_GLOBALS = {
    *_ARRAY_GLOBALS,
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NDArrayType:
    """What the unpickler hands out for ``numpy.ndarray``: a marker that ``_reconstruct`` accepts
    as its subtype, and that cannot be called (a direct ``ndarray(...)`` call could declare a
    stride-0 view of any size over a few bytes)."""


def _bounded(real: Any) -> Any:
    """``_reconstruct(subtype, shape, dtype)`` that refuses non-ndarrays and oversized shapes."""

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
        try:
            dims = [int(shape)] if isinstance(shape, int) else [int(s) for s in shape]
            items = math.prod(dims)
            np.dtype(dtype)
        except (TypeError, ValueError) as exc:
            raise pickle.UnpicklingError(f"bad array header ({exc})") from None
        if not isinstance(subtype, _NDArrayType) or any(d < 0 for d in dims) or items > MAX_BATCH_ITEMS:
            raise pickle.UnpicklingError(f"refusing to rebuild an array of {dims} {dtype!r}")
        return real(np.ndarray, shape, dtype)

    return reconstruct


def _check_array(value: Any, name: str, path: Path) -> None:
    """DataError unless ``value`` (when an array) is a C-contiguous array owning at most a
    batch's declared size, :data:`MAX_BATCH_ITEMS` values: no view, no stride trick."""
    if isinstance(value, np.ndarray) and (value.size > MAX_BATCH_ITEMS or not value.flags.c_contiguous):
        raise DataError(f"{path}: CIFAR-10 batch {name!r} is a {value.shape} view, not an array "
                        f"of at most {BATCH_ROWS:,} × {ROW_SIZE:,} stored values")


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as numpy pickles use it (bytes kept as latin-1 text), nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) == ("numpy", "ndarray"):
            return _NDArrayType()
        found = super().find_class(module, name)
        return _bounded(found) if (module, name) in _ARRAY_GLOBALS else found


def _load_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = read_regular(path, MAX_BATCH_BYTES, DataError, "CIFAR-10 batch")
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
    _check_array(data, "data", path)
    _check_array(labels, "labels", path)
    if isinstance(data, np.ndarray) and data.ndim >= 1 and data.shape[0] > BATCH_ROWS:
        raise DataError(f"{path}: CIFAR-10 batch has {data.shape[0]:,} rows, more than {BATCH_ROWS:,}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: CIFAR-10 batch data is {shape}; expected a uint8 (N, 3072) array")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist() if labels.ndim == 1 and labels.size == data.shape[0] else None
    if not isinstance(labels, list) or len(labels) != data.shape[0] or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels
    ):
        raise DataError(
            f"{path}: CIFAR-10 batch has data {data.shape} but not {data.shape[0]} integer labels"
        )
    labels_arr = np.array([int(v) for v in labels], dtype=np.int64) if labels else np.zeros(0, np.int64)
    if labels_arr.size and (labels_arr.min() < 0 or labels_arr.max() > 9):
        raise DataError(f"{path}: CIFAR-10 labels outside 0..9")
    return data.reshape(-1, 3, 32, 32), labels_arr


def _load_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(read_regular(path, MAX_BATCH_BYTES, DataError, "CIFAR-10 batch"), np.uint8)
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


def load_cifar10(split: str, data_dir: DataDir = None) -> tuple[np.ndarray, np.ndarray]:
    """``split`` from the first folder under ``data_dir`` that holds the batches."""
    for folder in data_dirs(data_dir, "cifar10"):
        found = find_cifar_dir(folder)
        if found is not None:
            return read_cifar10(found, split)
    raise DataError(
        f"cifar10: no batches (data_batch_1..5, test_batch) under {data_dir or '(no --data-dir)'}; "
        f"{HOW_TO_GET}"
    )


register_dataset(DatasetInfo(
    name="cifar10", in_shape=(3, 32, 32), num_classes=10, mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616), how_to_get=HOW_TO_GET, load=load_cifar10, train_size=50_000,
    eps_scale=EPS_SCALE, models=("mlp", "cnn-small"),  # LeNet-5 is an MNIST-sized network
))
