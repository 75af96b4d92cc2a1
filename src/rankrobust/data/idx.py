"""Reader for the IDX format of MNIST / Fashion-MNIST (optionally gzip-compressed).

Layout: 2 zero bytes, a dtype code, the number of dimensions d, then d big-endian uint32 sizes,
then the data in C order. The header is read (and decompressed) first; the payload is then read
with exactly the size the header states, at most :data:`MAX_IDX_BYTES`, so a small gzip file
that inflates to gigabytes is refused before it is inflated. A truncated, oversized or corrupt
file is reported in one line instead of a numpy traceback.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rankrobust.data.files import GiB, open_regular
from rankrobust.errors import DataError

MAX_IDX_BYTES = 2 * GiB  # payload cap of one IDX file (MNIST's largest is 47 MB)
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_ERRORS = (OSError, EOFError, zlib.error)
_CHUNK = 1 << 24


def _read_exact(stream: BinaryIO, n: int, path: Path, what: str) -> bytes:
    """``n`` bytes, read in chunks: ``read(n)`` would allocate all ``n`` before seeing EOF."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < n:
            chunk = stream.read(min(_CHUNK, n - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except _GZIP_ERRORS as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    data = b"".join(parts)
    if len(data) != n:
        raise DataError(f"{path}: truncated or corrupt IDX {what} ({len(data)} of {n} bytes)")
    return data


def read_idx(
    path: str | Path, ndim: int | None = None, item_shape: Sequence[int] | None = None
) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array of its stored dtype and shape.

    ``ndim`` and ``item_shape`` (the sizes after the first, e.g. (28, 28)), when given, are
    checked against the header before the payload is read.
    """
    path = Path(path)
    with open_regular(path, MAX_IDX_BYTES + 1024, DataError, "IDX file") as raw:
        magic = raw.read(2)
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if magic == b"\x1f\x8b" else raw  # type: ignore[assignment]
        head = _read_exact(stream, 4, path, "header")
        zero, code, dims = struct.unpack(">HBB", head)
        if zero != 0 or code not in _DTYPES or not 1 <= dims <= 4:
            raise DataError(f"{path}: not an IDX file (bad magic number {head.hex()})")
        shape = struct.unpack(">" + "I" * dims, _read_exact(stream, 4 * dims, path, "header"))
        if ndim is not None and dims != ndim:
            raise DataError(f"{path}: IDX data has shape {tuple(shape)}; expected {ndim} dimensions")
        if item_shape is not None and tuple(shape[1:]) != tuple(item_shape):
            raise DataError(
                f"{path}: IDX items are {'x'.join(map(str, shape[1:]))}; this dataset's are "
                f"{'x'.join(map(str, item_shape))}"
            )
        dtype = _DTYPES[code]
        expected = math.prod(shape) * dtype.itemsize
        if expected > MAX_IDX_BYTES:
            raise DataError(
                f"{path}: the IDX header {tuple(shape)} declares {expected} bytes, more than the "
                f"{MAX_IDX_BYTES} allowed"
            )
        payload = _read_exact(stream, expected, path, "payload")
        try:
            rest = stream.read(1)  # a gzip stream also checks its CRC here
        except _GZIP_ERRORS as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None
        if rest:
            raise DataError(
                f"{path}: IDX payload is longer than the header {tuple(shape)} states "
                f"({expected} bytes; corrupt file)"
            )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as IDX (gzip when the name ends in ``.gz``); used by tests and tools."""
    path = Path(path)
    codes = {np.dtype(v).newbyteorder(">").str: k for k, v in _DTYPES.items()}
    arr = np.ascontiguousarray(array)
    big = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    key = np.dtype(big).newbyteorder(">").str
    if key not in codes:
        raise DataError(f"IDX cannot store dtype {arr.dtype}")
    payload = struct.pack(">HBB", 0, codes[key], arr.ndim)
    payload += struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(big).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
