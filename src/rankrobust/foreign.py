"""Files that are not what they claim, recognized before anything parses or writes them.

Three readers meet files made by other programs: checkpoints (:mod:`rankrobust.checkpoint`),
a factory model's weights (:mod:`rankrobust.external`) and the results database
(:mod:`rankrobust.experiments.opening`). They ask this module what a file is:

- :func:`sniff` names, from its first bytes, a format that may run code when loaded (a Python
  pickle, a ``torch.save`` zip archive, which holds pickles): only PyTorch's restricted
  unpickler may open it, and only when the user asked for it;
- :func:`probe_sqlite` opens an SQLite file for looking only (it cannot write, and creates no
  ``-wal``/``-shm`` files unless a writer already made them), and :func:`schema_objects` lists
  what it holds, so that a database of another program is refused before anything touches it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

PICKLE = "a Python pickle"
TORCH_ZIP = "a torch.save zip archive (which holds pickles)"
HEAD_BYTES = 8  # enough for every signature below


def sniff(head: bytes) -> str | None:
    """What a file starting with ``head`` is when it is a pickle-bearing format (:data:`PICKLE`:
    protocol 2-5 opcode ``\\x80 N``; :data:`TORCH_ZIP`: ``PK``, the default ``torch.save``
    format), else None."""
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return PICKLE
    if head[:2] == b"PK":
        return TORCH_ZIP
    return None


def sqlite_uri(path: Path, **params: str) -> str:
    """``file:`` URI of ``path`` (percent-encoded) with query parameters, for ``uri=True``."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{path.resolve().as_uri()}?{query}"


def probe_sqlite(path: Path) -> sqlite3.Connection:
    """A connection to ``path`` that cannot write and, unless a ``-wal`` file exists (a writer
    may be active), creates no ``-wal``/``-shm`` files either (SQLite's ``immutable`` mode)."""
    mode = {"mode": "ro"} if Path(f"{path}-wal").exists() else {"immutable": "1"}
    return sqlite3.connect(sqlite_uri(path, **mode), uri=True, timeout=30.0, isolation_level=None)


def schema_objects(con: sqlite3.Connection) -> list[tuple[str, str]]:
    """(type, name) of every table, view and trigger of the database, SQLite's own left out."""
    rows = con.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger') "
        "AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
    ).fetchall()
    return [(str(t), str(n)) for t, n in rows]
