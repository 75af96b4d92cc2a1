"""The results database: one SQLite file (WAL journal), written only by the sweep driver.

Tables (read back as pandas DataFrames by the methods of the same name):

- ``runs``: one row per run id: status (pending | running | complete | failed), error, config
  (canonical JSON), labels, ``method`` (the registered name) and ``method_params`` (its
  parameters as canonical JSON, equal to the config's ``train.method`` minus the name: see
  :meth:`ResultsStore.integrity_check`), seed, clean accuracy, timings, package versions, attempts,
  and where it ran: ``host``, ``node`` (the Ray node id; NULL off Ray) and ``worker_pid``;
- ``epoch_metrics``: (run_id, epoch) → train/test loss and accuracy, lr, penalty, seconds;
- ``structure``: (run_id, epoch, layer) → the ``rankrobust.structure.analyze`` columns of W and,
  as ``delta_<metric>`` (in ``extra``), the same metrics of W − W₀ (weights minus their
  initialization; all 0 at epoch 0; absent from runs recorded before they existed);
- ``robustness``: (run_id, attack, norm, options, epsilon) → the fooling-ratio curve columns;
- ``scalars``: (run_id, name) → value (``rho_adv``, ``final_test_acc``, ...);
- ``spectra``: (run_id, layer, index) → singular value of the final model;
- ``interventions``: (run_id, intervention, layer, keep, attack, norm, ε) → accuracy, robust
  accuracy, fooling ratio, ρ_adv and structure of the model after a rank cut or pruning;
- ``point_robustness``: (run_id, attack, norm, point) → eps_min, per attacked test input (point =
  its index in the test split, the same across a study's runs) of the run's autoattack curves:
  the smallest budget at which it is not robust (0 = misclassified unperturbed, NULL = robust
  at every budget of the curve), refined by bisection when the curve's options ask for it.
  Added after schema 2 was released: a database without it reads as having no such rows, and
  opening one for writing adds the (empty) table.

Every write is one transaction: a result is either wholly stored (its child rows replaced) or not
at all, so a driver killed at any moment leaves a consistent file and each run recorded once.
Columns outside the fixed schema (e.g. metrics added by callbacks) go to a JSON ``extra`` column
and come back as ordinary DataFrame columns.

Every number read back is checked (:func:`check_values`): accuracies and ratios in [0, 1],
effective ranks, norms, singular values, ε, timings ≥ 0, everything finite, else DataError naming
the table, column and run; ``report`` and ``runs`` read through these methods.

Opening never harms a file that is not ours: an existing file is first inspected through a
read-only connection, and one that holds other tables, views or triggers, or no ``meta`` table
with our ``schema_version``, is refused (ConfigError) before anything is written to it (no
``journal_mode`` change, no schema). ``ResultsStore(path, readonly=True)`` (what ``runs`` and
``report`` use) opens with SQLite's ``mode=ro`` and never creates or migrates anything; it works
on a read-only file or folder.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rankrobust.configuration import brief
from rankrobust.errors import ConfigError, DataError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.grid import canonical_json, identity_dict, run_id
from rankrobust.experiments.margins import META_KEY
from rankrobust.experiments.run import RunResult, utc_now

SCHEMA_VERSION = 2  # 2: one method column + JSON method_params (was λ₁, λ_*, ε columns)
STATUSES = ("pending", "running", "complete", "failed")
SESSION_PREFIX = "sweep/"  # meta keys of sweep sessions' provenance records
RUN_COLUMNS = (
    "run_id", "status", "error", "config", "study", "variant", "label", "dataset", "model",
    "method", "method_params", "seed", "clean_accuracy", "train_seconds",
    "eval_seconds", "started_at", "finished_at", "attempts", "host", "checkpoint",
    "python_version", "torch_version", "numpy_version", "rankrobust_version", "warnings",
    "traceback", "node", "worker_pid",
)
# runs columns added after schema 2 came out: (name, SQL type), added to older files on open
ADDED_RUN_COLUMNS = (("node", "TEXT"), ("worker_pid", "INTEGER"))
EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "penalty",
                 "epoch_seconds")
STRUCTURE_COLUMNS = (
    "epoch", "layer", "kind", "shape", "rows", "cols", "effective_rank", "effective_sparsity",
    "stable_rank", "numerical_rank", "nuclear_norm", "spectral_norm", "frobenius_norm", "l1_norm",
    "normalized_effective_rank", "normalized_effective_sparsity",
)
INTERVENTION_COLUMNS = (
    "intervention", "layer", "keep", "clean_accuracy", "robust_accuracy", "fooling_ratio",
    "rho_adv", "effective_rank", "effective_sparsity", "normalized_effective_rank",
    "normalized_effective_sparsity", "numerical_rank", "density", "attack", "norm", "epsilon", "n",
)
# columns of text (ids, names, JSON, timestamps): never range-checked
_TEXT_COLUMNS = frozenset({
    "run_id", "status", "error", "config", "study", "variant", "label", "dataset", "model",
    "method", "method_params", "started_at", "finished_at", "host", "checkpoint", "python_version",
    "torch_version", "numpy_version", "rankrobust_version", "warnings", "traceback", "layer", "kind",
    "shape", "attack", "norm", "options", "intervention", "name", "broken_by", "registered_at",
    "node",
})
ROBUSTNESS_COLUMNS = ("attack", "norm", "options", "epsilon", "fooling_ratio",
                      "fooling_ratio_correct", "robust_accuracy", "clean_accuracy", "n")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    error TEXT, config TEXT NOT NULL, study TEXT, variant TEXT, label TEXT,
    dataset TEXT, model TEXT, method TEXT NOT NULL,
    method_params TEXT NOT NULL CHECK (json_valid(method_params)), seed INTEGER, clean_accuracy REAL, train_seconds REAL, eval_seconds REAL,
    started_at TEXT, finished_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, host TEXT,
    checkpoint TEXT, python_version TEXT, torch_version TEXT, numpy_version TEXT,
    rankrobust_version TEXT, warnings TEXT, traceback TEXT, registered_at TEXT, node TEXT,
    worker_pid INTEGER
);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id), epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, test_loss REAL, test_acc REAL, lr REAL, penalty REAL,
    epoch_seconds REAL, extra TEXT, PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS structure (
    run_id TEXT NOT NULL REFERENCES runs(run_id), epoch INTEGER NOT NULL, layer TEXT NOT NULL,
    kind TEXT, shape TEXT, rows INTEGER, cols INTEGER, effective_rank REAL,
    effective_sparsity REAL, stable_rank REAL, numerical_rank INTEGER, nuclear_norm REAL, spectral_norm REAL,
    frobenius_norm REAL, l1_norm REAL, normalized_effective_rank REAL,
    normalized_effective_sparsity REAL, extra TEXT, PRIMARY KEY (run_id, epoch, layer)
);
CREATE TABLE IF NOT EXISTS robustness (
    run_id TEXT NOT NULL REFERENCES runs(run_id), attack TEXT NOT NULL, norm TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{{}}', epsilon REAL NOT NULL, fooling_ratio REAL,
    fooling_ratio_correct REAL, robust_accuracy REAL, clean_accuracy REAL, n INTEGER,
    extra TEXT, PRIMARY KEY (run_id, attack, norm, options, epsilon)
);
CREATE TABLE IF NOT EXISTS scalars (
    run_id TEXT NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS spectra (
    run_id TEXT NOT NULL REFERENCES runs(run_id), layer TEXT NOT NULL, "index" INTEGER NOT NULL,
    singular_value REAL NOT NULL, PRIMARY KEY (run_id, layer, "index")
);
CREATE TABLE IF NOT EXISTS interventions (
    run_id TEXT NOT NULL REFERENCES runs(run_id), intervention TEXT NOT NULL, layer TEXT NOT NULL,
    keep REAL NOT NULL, clean_accuracy REAL, robust_accuracy REAL, fooling_ratio REAL,
    rho_adv REAL, effective_rank REAL, effective_sparsity REAL, normalized_effective_rank REAL,
    normalized_effective_sparsity REAL, numerical_rank REAL, density REAL, attack TEXT NOT NULL,
    norm TEXT NOT NULL, epsilon REAL NOT NULL, n INTEGER, extra TEXT,
    PRIMARY KEY (run_id, intervention, layer, keep, attack, norm, epsilon)
);
CREATE TABLE IF NOT EXISTS point_robustness (
    run_id TEXT NOT NULL REFERENCES runs(run_id), attack TEXT NOT NULL, norm TEXT NOT NULL,
    point INTEGER NOT NULL, eps_min REAL, PRIMARY KEY (run_id, attack, norm, point)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""
CHILD_TABLES = ("epoch_metrics", "structure", "robustness", "scalars", "spectra", "interventions",
                "point_robustness")
TABLES = frozenset({"meta", "runs", *CHILD_TABLES})
LATER_TABLES = frozenset({"point_robustness"})  # schema-2 files made before it lack it
REQUIRED_TABLES = TABLES - LATER_TABLES
POINT_COLUMNS = ("run_id", "attack", "norm", "point", "eps_min")

# What a stored number may be, per table and column, checked on every read (:func:`check_values`):
# (low, high), both inclusive; every value must also be finite. NULL (a missing value or NaN) is
# allowed. A column not listed (losses of custom objectives, penalties, extra callback metrics)
# must only be finite. A value outside these ranges can only come from a hand-edited or corrupted
# file, and the report would otherwise turn it into a verdict.
UNIT, NONNEG, COUNT = (0.0, 1.0), (0.0, math.inf), (1.0, math.inf)
_STRUCTURE_RANGES = {
    "effective_rank": NONNEG, "effective_sparsity": NONNEG, "stable_rank": NONNEG,
    "numerical_rank": NONNEG, "normalized_effective_rank": UNIT,
    "normalized_effective_sparsity": UNIT,
}
_W_RANGES = {**_STRUCTURE_RANGES, "nuclear_norm": NONNEG, "spectral_norm": NONNEG,
              "frobenius_norm": NONNEG, "l1_norm": NONNEG}  # of W, and of W − W₀ as delta_*
_ACCURACY_RANGES = {"clean_accuracy": UNIT, "robust_accuracy": UNIT, "fooling_ratio": UNIT,
                    "epsilon": NONNEG, "n": COUNT}
VALUE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "runs": {"clean_accuracy": UNIT, "train_seconds": NONNEG, "eval_seconds": NONNEG,
             "attempts": NONNEG, "worker_pid": COUNT},
    "epoch_metrics": {"epoch": NONNEG, "train_acc": UNIT, "test_acc": UNIT, "val_acc": UNIT,
                      "test_loss": NONNEG, "val_loss": NONNEG, "lr": NONNEG,
                      "epoch_seconds": NONNEG},
    "structure": {"epoch": NONNEG, "rows": COUNT, "cols": COUNT, **_W_RANGES,
                  **{f"delta_{k}": v for k, v in _W_RANGES.items()}},
    "robustness": {**_ACCURACY_RANGES, "fooling_ratio_correct": UNIT},
    "spectra": {"index": NONNEG, "singular_value": NONNEG},
    "interventions": {**_ACCURACY_RANGES, **_STRUCTURE_RANGES, "keep": UNIT, "density": UNIT,
                      "rho_adv": NONNEG},
    "point_robustness": {"point": NONNEG, "eps_min": NONNEG},
}
# scalars: (run_id, name, value), the range by name (others: finite)
SCALAR_RANGES = {"rho_adv": NONNEG, "final_test_acc": UNIT, "final_train_acc": UNIT,
                 "final_val_acc": UNIT, "final_test_loss": NONNEG, "final_val_loss": NONNEG}
# curve summaries stored as "{attack}_{norm}_{summary}" (experiments.run, robustness.summaries)
SUMMARY_RANGES = {"_area": UNIT, "_eps50": NONNEG, "_eps_min_q25": NONNEG, "_eps_min_q50": NONNEG,
                  "_eps_min_q75": NONNEG}


def scalar_range(name: str) -> tuple[float, float]:
    """(low, high) of scalar ``name``: :data:`SCALAR_RANGES`, a curve summary's by its suffix,
    else any finite number."""
    if name in SCALAR_RANGES:
        return SCALAR_RANGES[name]
    for suffix, bounds in SUMMARY_RANGES.items():
        if name.endswith(suffix):
            return bounds
    return (-math.inf, math.inf)


_SLACK = 1e-9  # float rounding, e.g. erank / min(m, n) = 1 + 2e-16


def check_values(frame: pd.DataFrame, table: str, path: Path | str) -> pd.DataFrame:
    """``frame`` (rows read from ``table``) unchanged, or DataError naming the first stored
    number that is not a finite number within its range (:data:`VALUE_RANGES`,
    :data:`SCALAR_RANGES`), its table, column and run: a report must not turn an accuracy of 1.7
    or a negative effective rank into a verdict. Text or blobs in a numeric column are refused
    too. One vectorized pass per column."""
    if frame.empty:
        return frame
    ranges = VALUE_RANGES.get(table, {})
    columns = ["value"] if table == "scalars" else [
        c for c in frame.columns
        if c in ranges or (c not in _TEXT_COLUMNS and pd.api.types.is_numeric_dtype(frame[c]))
    ]
    everything = (-math.inf, math.inf)
    for col in columns:
        raw = frame[col].to_numpy(dtype=object)  # (R,) as stored: numbers, None, text, bytes
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)  # (R,) NaN: none
        if table == "scalars":
            bounds = np.array([scalar_range(str(n)) for n in frame["name"]], float)
        else:
            bounds = np.array([ranges.get(col, everything)], dtype=float)  # (1, 2), broadcast
        low, high = bounds[:, 0] - _SLACK, bounds[:, 1] + _SLACK
        stored = pd.notna(frame[col]).to_numpy()
        missing = np.isnan(values)
        not_number = stored & missing
        with np.errstate(invalid="ignore"):
            outside = ~missing & ~(np.isfinite(values) & (values >= low) & (values <= high))
        bad = np.flatnonzero(not_number | outside)
        if len(bad):
            i = int(bad[0])
            lo, hi = bounds[i if len(bounds) > 1 else 0]
            name = f"{table}.{col}" if table != "scalars" else f"scalar {str(frame['name'].iloc[i])!r}"
            rid = str(frame["run_id"].iloc[i]) if "run_id" in frame.columns else "?"
            what = ("is not a number" if not_number[i] else "is not finite"
                    if not np.isfinite(values[i]) else f"lies outside [{lo:g}, {hi:g}]")
            shown = repr(raw[i]) if not_number[i] else f"{values[i]:g}"
            raise DataError(f"results database {path}: {name} = {shown} of run {rid} {what}; "
                            "refusing to report it (the file was edited or is corrupt)")
    return frame


def _split(row: dict[str, Any], fixed: Sequence[str]) -> tuple[list[Any], str | None]:
    values = [row.get(c) for c in fixed]
    extra = {k: v for k, v in row.items() if k not in fixed and k != "run_id"}
    return values, (json.dumps(extra, sort_keys=True, default=str) if extra else None)


def _expand_extra(frame: pd.DataFrame) -> pd.DataFrame:
    if "extra" not in frame.columns:
        return frame
    extras = [json.loads(e) if isinstance(e, str) else {} for e in frame["extra"]]
    frame = frame.drop(columns="extra")
    if any(extras):
        more = pd.DataFrame(extras, index=frame.index)
        frame = pd.concat([frame, more[[c for c in more.columns if c not in frame.columns]]], axis=1)
    return frame


def _uri(path: Path, **params: str) -> str:
    """``file:`` URI of ``path`` (percent-encoded) with query parameters, for ``uri=True``."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{path.resolve().as_uri()}?{query}"


def _connect_probe(path: Path) -> sqlite3.Connection:
    """A connection that cannot write and, unless a ``-wal`` file exists (a writer may be
    active), creates no ``-wal``/``-shm`` files either."""
    mode = {"mode": "ro"} if Path(f"{path}-wal").exists() else {"immutable": "1"}
    return sqlite3.connect(_uri(path, **mode), uri=True, timeout=30.0, isolation_level=None)


def _check_version(con: sqlite3.Connection, path: Path) -> None:
    try:
        found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # a 'meta' table of another shape
        found = None
    if found is None or str(found[0]) != str(SCHEMA_VERSION):
        raise ConfigError(
            f"results database {path} has schema {found and found[0]}, expected {SCHEMA_VERSION}"
        )


def _check_ours(con: sqlite3.Connection, path: Path, readonly: bool) -> bool:
    """True for a database without any schema; ConfigError unless it is ours (see the module
    docstring); with ``readonly`` every table must be there. Only reads."""
    objects = con.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'trigger') "
        "AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
    ).fetchall()
    if not objects:
        return True
    names = {str(name) for _, name in objects}
    foreign = sorted(str(n) for t, n in objects if t != "table" or n not in TABLES)
    if foreign or "meta" not in names:
        what = f"other tables ({', '.join(foreign[:3])})" if foreign else "no rankrobust meta table"
        raise ConfigError(f"{path} is not a rankrobust results database ({what}); refusing to touch it")
    _check_version(con, path)
    if readonly and not names >= REQUIRED_TABLES:
        raise ConfigError(f"results database {path} lacks table "
                          f"{sorted(REQUIRED_TABLES - names)[0]!r}")
    return False


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
    fresh = st.st_size == 0
    if not fresh:
        try:
            con = _connect_probe(p)
            try:
                fresh = _check_ours(con, p, readonly)
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"results database {p}: {exc}") from None
    if fresh and readonly:
        raise ConfigError(f"{p} is an empty database, not rankrobust results (run `rankrobust sweep` first)")
    return fresh


class ResultsStore:
    """SQLite results database at ``path`` (created with its folder when missing).

    With ``readonly=True`` the file must already be a rankrobust database; it is opened with
    SQLite's ``mode=ro`` (``immutable=1`` when nobody could be writing it: a read-only folder
    without ``-wal``/``-shm`` files) and nothing is ever written to it. See the module docstring
    for how a foreign database is refused.
    """

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False,
                 touch_nothing: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly or touch_nothing
        readonly = self.readonly
        self._touch_nothing = touch_nothing
        con: sqlite3.Connection | None = None
        try:
            fresh = inspect_database(self.path, readonly)
            if readonly:
                con = self._connect_readonly()
                con.execute("PRAGMA query_only = ON")
                con.execute("PRAGMA busy_timeout = 30000")
                _check_ours(con, self.path, readonly=True)
                self._con = con
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            con.execute("PRAGMA busy_timeout = 30000")
            if not fresh:  # checked again on this connection, before anything is written
                _check_ours(con, self.path, readonly=False)
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("PRAGMA foreign_keys = ON")
            self._con = con
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if not tables >= TABLES:  # new file (or one of ours missing a table): create
                with self.transaction() as tx:
                    self._create(tx)
            else:
                self._check_version(con)
            self._add_run_columns(con)
        except BaseException as exc:
            if con is not None:
                con.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise ConfigError(f"results database {self.path}: {exc}") from None
            raise

    def _connect_readonly(self) -> sqlite3.Connection:
        """Read-only; with ``touch_nothing`` (dry runs) or an unwritable folder and no
        ``-wal``/``-shm`` beside the file (so no writer is active), SQLite's ``immutable``
        mode, which creates no ``-wal``/``-shm`` files either."""
        folder = self.path.resolve().parent
        side_files = any(Path(f"{self.path}{s}").exists() for s in ("-wal", "-shm"))
        if not side_files and (self._touch_nothing or not os.access(folder, os.W_OK)):
            return sqlite3.connect(_uri(self.path, immutable="1"), uri=True, isolation_level=None)
        return sqlite3.connect(_uri(self.path, mode="ro"), uri=True, timeout=30.0, isolation_level=None)

    def _create(self, con: sqlite3.Connection) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                con.execute(statement)
        found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found is None:
            con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._check_version(con)

    def _check_version(self, con: sqlite3.Connection) -> None:
        _check_version(con, self.path)

    def _add_run_columns(self, con: sqlite3.Connection) -> None:
        """Add :data:`ADDED_RUN_COLUMNS` to a file written before they existed (NULL there)."""
        have = {str(r[1]) for r in con.execute("PRAGMA table_info(runs)")}
        for name, kind in ADDED_RUN_COLUMNS:
            if name not in have:
                con.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception)."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_check(self) -> str:
        """'ok' for a healthy file, else the first problem found.

        SQLite's ``PRAGMA integrity_check``, then every run's ``method`` and ``method_params``
        against the ``train.method`` of its stored config (they are written together and must
        agree; a hand-edited or half-migrated row would otherwise be reported under the wrong
        method).
        """
        found = str(self._con.execute("PRAGMA integrity_check").fetchone()[0])
        return found if found != "ok" else self.method_check()

    def method_check(self) -> str:
        """'ok', or the first run whose identity columns disagree with its stored config:
        ``method`` / ``method_params`` with ``train.method``, and ``dataset``, ``model`` and
        ``seed`` with the config's (the report groups, pairs and labels runs by these columns,
        so it checks this before reading anything else)."""
        for rid, method, params, config, dataset, model, seed in self._con.execute(
            "SELECT run_id, method, method_params, config, dataset, model, seed FROM runs"
        ):
            try:
                data = json.loads(config)
                stored = dict(data["train"]["method"])
                name = stored.pop("name")
                ok = name == method and stored == json.loads(params)
                found = {"dataset": data["dataset"], "model": data["model"],
                         "seed": data["train"]["seed"]}
            except (ValueError, TypeError, KeyError):
                ok, found = False, {}
            if not ok:
                return f"run {rid}: method/method_params disagree with its config"
            for key, value in (("dataset", dataset), ("model", model), ("seed", seed)):
                if found[key] != value or type(found[key]) is not type(value):
                    return f"run {rid}: column {key} = {brief(value)} disagrees with its config ({brief(found[key])})"
        return "ok"

    # -- writes (driver only) ---------------------------------------------------------------
    def register(self, configs: Iterable[RunConfig]) -> int:
        """Insert unseen runs as 'pending' (known ids are left alone); returns how many were new."""
        new = 0
        now = utc_now()
        with self.transaction() as con:
            for config in configs:
                cur = con.execute(
                    "INSERT OR IGNORE INTO runs (run_id, status, config, study, variant, label, "
                    "dataset, model, method, method_params, seed, registered_at)"
                    " VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id(config), canonical_json(identity_dict(config)["run"]), config.study,
                     config.variant, config.label, config.dataset, config.model, config.method,
                     canonical_json(config.train.method.params()), config.seed, now),
                )
                new += cur.rowcount
        return new

    def mark_running(self, rid: str) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, started_at = ?, "
                "finished_at = NULL, error = NULL, traceback = NULL WHERE run_id = ?",
                (utc_now(), rid),
            )

    def mark_pending(self, rids: Sequence[str]) -> None:
        """Runs handed out but not finished (their cluster went away) wait again: 'running' → 'pending'."""
        with self.transaction() as con:
            con.executemany("UPDATE runs SET status = 'pending' WHERE run_id = ? AND status = 'running'",
                            [(rid,) for rid in rids])

    def record(self, result: RunResult) -> None:
        """Store one finished run (complete or failed) atomically, replacing earlier child rows."""
        rid = result.run_id
        v = result.versions
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM runs WHERE run_id = ?", (rid,)).fetchone() is None:
                raise ConfigError(f"run {rid} is not registered in {self.path}")
            for table in CHILD_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", (rid,))
            con.executemany(
                "INSERT INTO point_robustness (run_id, attack, norm, point, eps_min) "
                "VALUES (?, ?, ?, ?, ?)",
                [(rid, str(p["attack"]), str(p["norm"]), int(p["point"]),
                  None if p["eps_min"] is None or math.isnan(p["eps_min"]) else float(p["eps_min"]))
                 for p in result.points])
            con.execute(
                "UPDATE runs SET status = ?, error = ?, traceback = ?, clean_accuracy = ?, "
                "train_seconds = ?, eval_seconds = ?, started_at = COALESCE(?, started_at), "
                "finished_at = ?, host = ?, checkpoint = ?, python_version = ?, torch_version = ?, "
                "numpy_version = ?, rankrobust_version = ?, warnings = ?, node = ?, worker_pid = ? "
                "WHERE run_id = ?",
                (result.status, result.error, result.traceback, result.clean_accuracy,
                 result.train_seconds, result.eval_seconds, result.started_at or None,
                 result.finished_at or utc_now(), result.host, result.checkpoint, v.get("python"),
                 v.get("torch"), v.get("numpy"), v.get("rankrobust"),
                 json.dumps(result.warnings) if result.warnings else None, result.node,
                 result.worker_pid, rid),
            )
            for table, fixed, rows in (
                ("epoch_metrics", EPOCH_COLUMNS, result.history),
                ("structure", STRUCTURE_COLUMNS, result.structure),
                ("robustness", ROBUSTNESS_COLUMNS, result.robustness),
                ("interventions", INTERVENTION_COLUMNS, result.interventions),
            ):
                cols = ", ".join(("run_id", *fixed, "extra"))
                marks = ", ".join("?" * (len(fixed) + 2))
                con.executemany(
                    f"INSERT INTO {table} ({cols}) VALUES ({marks})",
                    [(rid, *vals, extra) for vals, extra in (_split(r, fixed) for r in rows)],
                )
            con.executemany("INSERT INTO scalars VALUES (?, ?, ?)",
                            [(rid, k, float(val)) for k, val in result.scalars.items()])
            con.executemany(
                'INSERT INTO spectra (run_id, layer, "index", singular_value) VALUES (?, ?, ?, ?)',
                [(rid, layer, i, float(s)) for layer, sv in result.spectra.items()
                 for i, s in enumerate(sv)],
            )

    # -- reads (what the report uses) ------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self._con, params=list(params))

    def _child(self, table: str, run_ids: Sequence[str] | None, order: str) -> pd.DataFrame:
        where, params = "", list(run_ids or [])
        if run_ids is not None:
            where = f" WHERE run_id IN ({', '.join('?' * len(params))})" if params else " WHERE 0"
        frame = self._query(f"SELECT * FROM {table}{where} ORDER BY {order}", params)
        return check_values(_expand_extra(frame), table, self.path)

    def runs(self, status: str | Sequence[str] | None = None) -> pd.DataFrame:
        """One row per run (columns :data:`RUN_COLUMNS`), optionally filtered by status."""
        statuses = [status] if isinstance(status, str) else list(status or [])
        for s in statuses:
            if s not in STATUSES:
                raise ConfigError(f"unknown status {s!r}; choose from {', '.join(STATUSES)}")
        where = f" WHERE status IN ({', '.join('?' * len(statuses))})" if statuses else ""
        have = {str(r[1]) for r in self._con.execute("PRAGMA table_info(runs)")}
        cols = ", ".join(c if c in have else f"NULL AS {c}" for c in RUN_COLUMNS)  # an older file
        frame = self._query(f"SELECT {cols} FROM runs{where} ORDER BY registered_at, rowid", statuses)
        return check_values(frame, "runs", self.path)

    def status_of(self, run_ids: Sequence[str]) -> dict[str, str]:
        """run id → status for the given ids that are registered."""
        out: dict[str, str] = {}
        for i in range(0, len(run_ids), 500):
            chunk = list(run_ids[i : i + 500])
            marks = ", ".join("?" * len(chunk))
            for rid, st in self._con.execute(
                f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})", chunk
            ):
                out[rid] = st
        return out

    def epoch_metrics(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Per-epoch metrics: run_id, epoch, train_loss, train_acc, test_loss, test_acc, lr, …"""
        return self._child("epoch_metrics", run_ids, "run_id, epoch")

    def structure(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Per-epoch per-layer structure: run_id, epoch (0 = init) + the analyze() columns."""
        return self._child("structure", run_ids, "run_id, epoch, rowid")

    def robustness(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Fooling-ratio curves: run_id + the fooling_ratio_curve columns (+ attack options)."""
        return self._child("robustness", run_ids, "run_id, rowid")

    def scalars(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Named per-run numbers: run_id, name, value (e.g. name='rho_adv')."""
        return self._child("scalars", run_ids, "run_id, name")

    def interventions(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Intervention tables: run_id + :data:`INTERVENTION_COLUMNS` (one row per layer × keep)."""
        return self._child("interventions", run_ids, "run_id, rowid")

    def point_robustness(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Per-input minimal budgets: exactly the columns run_id, attack, norm, point (int, the
        input's index in the test split), eps_min (float; 0 = misclassified unperturbed, NaN =
        robust at every budget). Empty (same columns) for a database made before the table."""
        found = self._con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'point_robustness'"
        ).fetchone()
        if found is None:
            return pd.DataFrame({"run_id": pd.Series(dtype=object), "attack": pd.Series(dtype=object),
                                 "norm": pd.Series(dtype=object), "point": pd.Series(dtype="int64"),
                                 "eps_min": pd.Series(dtype="float64")})
        frame = self._child("point_robustness", run_ids, "run_id, attack, norm, point")
        frame = frame[list(POINT_COLUMNS)]
        frame["eps_min"] = pd.to_numeric(frame["eps_min"], errors="raise").astype("float64")
        return frame.astype({"point": "int64"}).reset_index(drop=True)

    def spectra(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Final singular values: run_id, layer, index (0 = largest), singular_value."""
        return self._child("spectra", run_ids, 'run_id, rowid')

    # -- provenance (rankrobust.experiments.provenance) --------------------------------------
    def save_session(self, key: str, record: dict[str, Any]) -> None:
        """Store or update sweep session ``key``'s provenance record (a ``meta`` row)."""
        if not key.startswith(SESSION_PREFIX):
            raise ValueError(f"session keys start with {SESSION_PREFIX!r}, got {key!r}")
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                        (key, json.dumps(record, sort_keys=True, default=str, allow_nan=False)))

    def declare_margins(self, margins: dict[str, Any]) -> None:
        """Store the study's declared claims margins (:mod:`rankrobust.experiments.margins`)
        once, at the first sweep that declares them; ConfigError if a later session declares
        different ones (margins are fixed before any result exists)."""
        with self.transaction() as con:
            found = con.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
            if found is not None:
                stored = json.loads(found[0]).get("margins")
                if stored != margins:
                    raise ConfigError(
                        f"results database {self.path}: the study's margins {brief(margins)} differ "
                        f"from those declared at its first sweep {brief(stored)}; margins are "
                        "fixed before the run (use a new database to change them)")
                return
            con.execute("INSERT INTO meta VALUES (?, ?)", (META_KEY, json.dumps(
                {"margins": margins, "declared_at": utc_now()}, sort_keys=True, allow_nan=False)))

    def declared_margins(self) -> str | None:
        """The JSON record stored by :meth:`declare_margins`, None when the study declared none."""
        found = self._con.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
        return None if found is None else str(found[0])

    def sessions(self) -> pd.DataFrame:
        """The sweep sessions' records, oldest first: key plus the record's fields. A record
        that is not a JSON object is skipped, a ``seconds`` that is not a finite number ≥ 0
        reads as NaN: provenance is shown, never computed with."""
        rows = []
        for key, value in self._con.execute(
                "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(SESSION_PREFIX), SESSION_PREFIX)).fetchall():
            try:
                record = json.loads(value)
            except (TypeError, ValueError):
                continue
            if not isinstance(record, dict):
                continue
            seconds = record.get("seconds")
            ok = (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                  and math.isfinite(seconds) and seconds >= 0)
            wall = float(seconds) if ok and isinstance(seconds, (int, float)) else math.nan
            rows.append({**record, "key": str(key), "seconds": wall})
        return pd.DataFrame(rows)
