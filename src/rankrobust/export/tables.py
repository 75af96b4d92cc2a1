"""A results database as flat, typed tables: one DataFrame per store table, written one file each.

:func:`study_tables` reads every table of a :class:`~rankrobust.experiments.store.ResultsStore`
(``runs`` and each of the store's ``CHILD_TABLES``, whatever tables it declares, plus the sweep
``sessions`` and the report's ``claims``) through the store's own read methods, so every number is
range-checked exactly as ``report`` reads it. ``runs`` gains the run's config flattened into
``config.<path>`` columns (``config.train.epochs``, ``config.train.method.name``, ...).

Columns keep one type each: a column whose values are numbers stays numeric (integers as
nullable ``Int64``), text stays text, and a column that mixes kinds or holds lists and dicts is
stored as canonical JSON text. :func:`write_tables` writes ``<table>.parquet`` (pyarrow) or
``<table>.csv`` into a new folder, all or nothing: the files are written into a temporary sibling
folder that is renamed into place once every file is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from rankrobust.errors import ConfigError, DataError
from rankrobust.experiments.store import CHILD_TABLES, ResultsStore

FORMATS = ("parquet", "csv")
CONFIG_PREFIX = "config."


def _json(value: Any) -> Any:
    """Canonical JSON text of a list or dict (missing values stay missing)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return json.dumps(value, sort_keys=True, default=str)


def typed_column(column: pd.Series) -> pd.Series:
    """``column`` with one type for every value: bool → ``boolean``, int → ``Int64``, int and
    float → float64, text (or nothing but missing values) → str; anything else (lists, dicts,
    mixed kinds) → JSON text. Numeric and text columns come back unchanged."""
    if column.dtype != object:
        return column
    present = [v for v in column if v is not None and not (isinstance(v, float) and v != v)]
    kinds = {type(v) for v in present}
    if not kinds or kinds == {str}:
        return column.astype("str")
    if kinds == {bool}:
        return column.astype("boolean")
    if kinds == {int}:
        return column.astype("Int64")
    if kinds <= {int, float}:
        return column.astype("float64")
    return column.map(_json).astype("str")


def flatten_configs(configs: pd.Series) -> pd.DataFrame:
    """One column per leaf of the stored JSON configs (``config.train.lr``, ...); lists and
    empty dicts stay whole as JSON text. Index as ``configs``."""
    records = [json.loads(c) if isinstance(c, str) else {} for c in configs]
    flat = pd.json_normalize(records, sep=".") if records else pd.DataFrame()
    flat.index = configs.index
    flat = flat.rename(columns=lambda c: CONFIG_PREFIX + str(c))
    for col in flat.columns:
        if any(isinstance(v, (list, dict)) for v in flat[col]):
            flat[col] = flat[col].map(_json).astype(object)
        flat[col] = typed_column(flat[col])  # lists (JSON text) and missing values → str
    return flat


def _read_table(store: ResultsStore, name: str) -> pd.DataFrame:
    """Table ``name`` through the store's read method of the same name (every table has one)."""
    reader = getattr(store, name, None)
    if not callable(reader):
        raise DataError(f"results database {store.path}: no reader for table {name!r}")
    frame = reader()
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"results database {store.path}: table {name!r} did not read as a table")
    return frame


def claims_table(db: str | os.PathLike[str]) -> pd.DataFrame:
    """The claims table that ``rankrobust report`` computes (its claims.csv), so that the
    export and the report never disagree."""
    from rankrobust.report.context import study_claims  # heavy: matplotlib
    from rankrobust.report.scoring import read_margins
    from rankrobust.report.tables import load_tables

    return study_claims(load_tables(db), read_margins(str(db)))[1]


def study_tables(db: str | os.PathLike[str], claims: bool = True) -> dict[str, pd.DataFrame]:
    """Every table of the results database ``db`` by name, typed (see the module docstring):
    ``runs`` (with ``config.*`` columns), the store's child tables, ``sessions`` and, with
    ``claims``, the report's claims. Opens ``db`` read-only; DataError/ConfigError if it is
    missing or not a rankrobust database."""
    if not Path(db).exists():
        raise DataError(f"no results database at {db}")
    with ResultsStore(db, readonly=True) as store:
        tables = {name: _read_table(store, name) for name in ("runs", *CHILD_TABLES)}
        tables["sessions"] = store.sessions()
    runs = tables["runs"]
    tables["runs"] = pd.concat([runs, flatten_configs(runs["config"])], axis=1)
    if claims:
        tables["claims"] = claims_table(db)
    return {name: frame.apply(typed_column) if len(frame.columns) else frame
            for name, frame in tables.items()}


def check_out_dir(out: str | os.PathLike[str]) -> Path:
    """``out`` if it is missing or an empty folder, else ConfigError: an export never mixes its
    files with others' or replaces anything."""
    path = Path(out)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ConfigError(f"--out {path}: not a folder; give a new or empty folder")
    if path.is_dir():
        try:
            entries = next(os.scandir(path), None)
        except OSError as exc:
            raise ConfigError(f"--out {path}: cannot read the folder ({exc.strerror or exc})") from None
        if entries is not None:
            raise ConfigError(f"--out {path}: the folder is not empty; give a new or empty folder "
                              "(an export never mixes with other files)")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:  # missing folders are created later
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: cannot write into {parent}")
    return path


def write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """One table as ``path`` (parquet through pyarrow, or CSV with a header row)."""
    if fmt == "parquet":
        frame.to_parquet(path, engine="pyarrow", index=False)
    else:
        frame.to_csv(path, index=False)


def require_format(fmt: str) -> None:
    """ConfigError for an unknown format, or for parquet without pyarrow installed."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: invalid choice {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("--format parquet needs pyarrow (pip install pyarrow), "
                              "or use --format csv") from None


def write_tables(tables: dict[str, pd.DataFrame], out: str | os.PathLike[str], fmt: str) -> list[Path]:
    """Write ``<name>.<fmt>`` per table into the new or empty folder ``out``, all or nothing
    (a temporary sibling folder renamed into place); returns the paths written."""
    require_format(fmt)
    target = check_out_dir(out)
    target.absolute().parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.absolute().parent))
    try:
        for name, frame in tables.items():
            write_frame(frame, scratch / f"{name}.{fmt}", fmt)
        umask = os.umask(0)
        os.umask(umask)
        scratch.chmod(0o777 & ~umask)  # mkdtemp's 0700 → an ordinary folder
        if target.is_dir():
            target.rmdir()  # empty (checked): replaced by the complete folder
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return [target / f"{name}.{fmt}" for name in tables]
