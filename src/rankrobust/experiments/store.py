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

Opening, refusing a file that is not ours and bringing older files up to date live in
:mod:`rankrobust.experiments.opening`; the columns, their types and ranges in
:mod:`rankrobust.experiments.schema`; the check of every number read in
:mod:`rankrobust.experiments.values`. ``ResultsStore(path, readonly=True)`` (what ``runs`` and
``report`` use) opens with SQLite's ``mode=ro`` and never creates or migrates anything; it works
on a read-only file or folder.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from rankrobust.configuration import brief
from rankrobust.errors import ConfigError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.grid import canonical_json, identity_dict, run_id
from rankrobust.experiments.margins import META_KEY
from rankrobust.experiments.opening import (
    connect_readonly,
    connect_writable,
    inspect_database,
    transaction,
)
from rankrobust.experiments.run import RunResult, utc_now
from rankrobust.experiments.schema import (
    CHILD_TABLES,
    POINT_COLUMNS,
    RUN_COLUMNS,
    STATUSES,
    fixed_columns,
    quote_name,
    sql_columns,
)
from rankrobust.experiments.values import check_values

__all__ = ["CHILD_TABLES", "SESSION_PREFIX", "ResultsStore", "check_values", "inspect_database"]

SESSION_PREFIX = "sweep/"  # meta keys of sweep sessions' provenance records
_DTYPES: dict[str, Any] = {"TEXT": object, "INTEGER": "int64", "REAL": "float64"}  # empty frames
_ROW_TABLES = ("epoch_metrics", "structure", "robustness", "interventions")  # rows of dicts + extra


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


def _insert(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)``."""
    names = ", ".join(quote_name(c) for c in columns)
    return f"{verb} INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"


class ResultsStore:
    """SQLite results database at ``path`` (created with its folder when missing).

    With ``readonly=True`` the file must already be a rankrobust database; it is opened with
    SQLite's ``mode=ro`` (``immutable=1`` when nobody could be writing it: a read-only folder
    without ``-wal``/``-shm`` files) and nothing is ever written to it. See
    :mod:`rankrobust.experiments.opening` for how a foreign database is refused.
    """

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False,
                 touch_nothing: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly or touch_nothing
        try:
            fresh = inspect_database(self.path, self.readonly)
            self._con = (connect_readonly(self.path, touch_nothing) if self.readonly
                         else connect_writable(self.path, fresh))
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"results database {self.path}: {exc}") from None

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception)."""
        with transaction(self._con) as con:
            yield con

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
                row = {"run_id": run_id(config), "status": "pending",
                       "config": canonical_json(identity_dict(config)["run"]),
                       "study": config.study, "variant": config.variant, "label": config.label,
                       "dataset": config.dataset, "model": config.model, "method": config.method,
                       "method_params": canonical_json(config.train.method.params()),
                       "seed": config.seed, "registered_at": now}
                cur = con.execute(_insert("runs", list(row), "INSERT OR IGNORE"),
                                  list(row.values()))
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
                _insert("point_robustness", POINT_COLUMNS),
                [(rid, str(p["attack"]), str(p["norm"]), int(p["point"]),
                  None if p["eps_min"] is None or math.isnan(p["eps_min"]) else float(p["eps_min"]))
                 for p in result.points])
            outcome = {
                "status": result.status, "error": result.error, "traceback": result.traceback,
                "clean_accuracy": result.clean_accuracy, "train_seconds": result.train_seconds,
                "eval_seconds": result.eval_seconds, "started_at": result.started_at or None,
                "finished_at": result.finished_at or utc_now(), "host": result.host,
                "checkpoint": result.checkpoint, "python_version": v.get("python"),
                "torch_version": v.get("torch"), "numpy_version": v.get("numpy"),
                "rankrobust_version": v.get("rankrobust"),
                "warnings": json.dumps(result.warnings) if result.warnings else None,
                "node": result.node, "worker_pid": result.worker_pid,
            }
            sets = ", ".join(f"{c} = COALESCE(?, {c})" if c == "started_at" else f"{c} = ?"
                             for c in outcome)  # a run's start is kept when the result lacks it
            con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*outcome.values(), rid))
            for table, rows in zip(_ROW_TABLES, (result.history, result.structure,
                                                 result.robustness, result.interventions), strict=True):
                fixed = fixed_columns(table)
                con.executemany(
                    _insert(table, ("run_id", *fixed, "extra")),
                    [(rid, *vals, extra) for vals, extra in (_split(r, fixed) for r in rows)],
                )
            con.executemany(_insert("scalars", ("run_id", *fixed_columns("scalars"))),
                            [(rid, k, float(val)) for k, val in result.scalars.items()])
            con.executemany(
                _insert("spectra", ("run_id", *fixed_columns("spectra"))),
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
            return pd.DataFrame({c.name: pd.Series(dtype=_DTYPES[c.type])
                                 for c in sql_columns("point_robustness")})
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

