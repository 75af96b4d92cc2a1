"""Opening the results database: refuse what is not ours, create, bring older files up to date.

Opening never harms a file that is not ours: an existing file is first inspected through a
read-only connection (:func:`rankrobust.foreign.probe_sqlite`), and one that holds other
tables, views or triggers, or no ``meta`` table with our ``schema_version``, is refused
(ConfigError) before anything is written to it (no ``journal_mode`` change, no schema). A
read-only open uses SQLite's ``mode=ro`` and never creates or migrates anything.

Older files of schema 2 are read as they are and brought up to date when opened for writing
(:func:`migrate`): tables added since (:data:`~rankrobust.experiments.schema.LATER_TABLES`) are
created empty, and the runs columns added since
(:data:`~rankrobust.experiments.schema.ADDED_RUN_COLUMNS`) are added (NULL in old rows).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rankrobust.errors import ConfigError
from rankrobust.experiments.schema import (
    ADDED_RUN_COLUMNS,
    REQUIRED_TABLES,
    SCHEMA_VERSION,
    TABLES,
    schema_statements,
)
from rankrobust.foreign import HEAD_BYTES, probe_sqlite, schema_objects, sniff, sqlite_uri


def check_version(con: sqlite3.Connection, path: Path) -> None:
    """ConfigError unless the ``meta`` table records our :data:`SCHEMA_VERSION`."""
    try:
        found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # a 'meta' table of another shape
        found = None
    if found is None or str(found[0]) != str(SCHEMA_VERSION):
        raise ConfigError(
            f"results database {path} has schema {found and found[0]}, expected {SCHEMA_VERSION}"
        )


def check_ours(con: sqlite3.Connection, path: Path, readonly: bool) -> bool:
    """True for a database without any schema; ConfigError unless it is ours (see the module
    docstring); with ``readonly`` every table must be there. Only reads."""
    objects = schema_objects(con)
    if not objects:
        return True
    names = {name for _, name in objects}
    foreign = sorted(n for t, n in objects if t != "table" or n not in TABLES)
    if foreign or "meta" not in names:
        what = f"other tables ({', '.join(foreign[:3])})" if foreign else "no rankrobust meta table"
        raise ConfigError(f"{path} is not a rankrobust results database ({what}); refusing to touch it")
    check_version(con, path)
    if readonly and not names >= REQUIRED_TABLES:
        raise ConfigError(f"results database {path} lacks table "
                          f"{sorted(REQUIRED_TABLES - names)[0]!r}")
    return False


def _probe(p: Path, readonly: bool) -> bool:
    """:func:`check_ours` of a non-empty file, through a connection that cannot write; a
    pickle-bearing file (:func:`rankrobust.foreign.sniff`) is named and refused unopened."""
    try:
        with open(p, "rb") as fh:
            kind = sniff(fh.read(HEAD_BYTES))
    except OSError as exc:
        raise ConfigError(f"results database {p}: {exc.strerror or exc}") from None
    if kind is not None:
        raise ConfigError(f"results database {p}: file is {kind}, not a database")
    try:
        con = probe_sqlite(p)
        try:
            return check_ours(con, p, readonly)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"results database {p}: {exc}") from None


def inspect_database(path: str | os.PathLike[str], readonly: bool = False) -> bool:
    """Whether ``path`` is a new database (missing or empty: a writer creates it), after
    checking, without writing anything, that an existing file is a rankrobust database.

    ConfigError for anything else: a folder or special file, a file that is not SQLite, a
    database of another program or of another schema version; with ``readonly`` also for a
    missing or empty database.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if readonly:
            raise ConfigError(f"no results database at {p}") from None
        return True
    except OSError as exc:
        raise ConfigError(f"results database {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"results database {p}: not a regular file")
    fresh = st.st_size == 0 or _probe(p, readonly)
    if fresh and readonly:
        raise ConfigError(f"{p} is an empty database, not rankrobust results (run `rankrobust sweep` first)")
    return fresh


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def connect_readonly(path: Path, touch_nothing: bool) -> sqlite3.Connection:
    """A checked read-only connection to our database at ``path``: SQLite's ``immutable``
    mode (no ``-wal``/``-shm`` files created) with ``touch_nothing`` (dry runs) or an unwritable
    folder, when no ``-wal``/``-shm`` beside the file shows an active writer; else ``mode=ro``."""
    folder = path.resolve().parent
    side_files = any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm"))
    if not side_files and (touch_nothing or not os.access(folder, os.W_OK)):
        con = sqlite3.connect(sqlite_uri(path, immutable="1"), uri=True, isolation_level=None)
    else:
        con = sqlite3.connect(sqlite_uri(path, mode="ro"), uri=True, timeout=30.0, isolation_level=None)
    try:
        con.execute("PRAGMA query_only = ON")
        con.execute("PRAGMA busy_timeout = 30000")
        check_ours(con, path, readonly=True)
    except BaseException:
        con.close()
        raise
    return con


def connect_writable(path: Path, fresh: bool) -> sqlite3.Connection:
    """A connection for writing (WAL journal, foreign keys on) to our database at ``path``,
    created with its folder when ``fresh``, else checked again on this connection before
    anything is written, then brought up to date (:func:`migrate`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout = 30000")
        if not fresh:
            check_ours(con, path, readonly=False)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute("PRAGMA foreign_keys = ON")
        migrate(con, path)
    except BaseException:
        con.close()
        raise
    return con


def migrate(con: sqlite3.Connection, path: Path) -> None:
    """Create what is missing (every table of a new file; a later table of an older one) and
    add :data:`~rankrobust.experiments.schema.ADDED_RUN_COLUMNS` to a file written before
    they existed (NULL there)."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    if not tables >= TABLES:
        with transaction(con):
            for statement in schema_statements():
                con.execute(statement)
            found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None:
                con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            check_version(con, path)
    else:
        check_version(con, path)
    have = {str(r[1]) for r in con.execute("PRAGMA table_info(runs)")}
    for name, kind in ADDED_RUN_COLUMNS:
        if name not in have:
            con.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
