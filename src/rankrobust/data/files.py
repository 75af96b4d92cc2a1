"""Reading files a user names: regular files only, never more bytes than a stated bound.

A path may be a symlink to ``/dev/zero``, a FIFO that never ends or a sparse file of terabytes.
:func:`open_regular` stats the path, opens it without blocking and checks again on the open
descriptor that it is a regular file no larger than ``limit`` bytes; :func:`read_regular` then
reads at most ``limit`` bytes. Every refusal is the caller's typed error with the path in it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from rankrobust.errors import DataError, RankRobustError

MiB = 1024 * 1024
GiB = 1024 * MiB


def _size(n: int) -> str:
    return f"{n / GiB:.3g} GiB" if n >= GiB else f"{n / MiB:.3g} MiB"


def open_regular(
    path: str | os.PathLike[str],
    limit: int,
    error: type[RankRobustError] = DataError,
    what: str = "file",
) -> BinaryIO:
    """``path`` opened for binary reading, after checking it is a regular file of ≤ ``limit`` bytes.

    Raises ``error`` (one line naming the path) when the file is missing, unreadable, not a
    regular file (a device, FIFO, socket or folder) or larger than ``limit``.
    """
    p = Path(path)
    try:
        before = os.stat(p)
        if not stat.S_ISREG(before.st_mode):
            raise error(f"{p}: not a regular file; refusing to read a {what} from it")
        # O_NONBLOCK: a FIFO swapped in after the stat cannot block the open
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode):
            raise error(f"{p}: not a regular file; refusing to read a {what} from it")
        if now.st_size > limit:
            raise error(f"{p}: {_size(now.st_size)} is larger than the {_size(limit)} a {what} may have")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(
    path: str | os.PathLike[str],
    limit: int,
    error: type[RankRobustError] = DataError,
    what: str = "file",
) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``; see :func:`open_regular`)."""
    with open_regular(path, limit, error, what) as fh:
        size = os.fstat(fh.fileno()).st_size  # ≤ limit; read() preallocates what it is asked for
        try:
            data = fh.read(size + 1)
        except OSError as exc:
            raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > size:
        raise error(f"{path}: the {what} changed while it was read")
    return data
