"""The results database's schema, generated from one column table, is the schema of before.

``HEAD_SCHEMA`` is ``SELECT type, name, sql FROM sqlite_master`` of a database created by
``ResultsStore`` at c38f577, before the store was generated from
:mod:`rankrobust.experiments.schema`: a new database must declare exactly these tables, columns
(names, types, constraints, order), keys and index; only the whitespace of the SQL text may
differ. The committed databases of ``docs/results`` must keep opening and reading.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from rankrobust.experiments.schema import (
    ADDED_RUN_COLUMNS,
    SCHEMA,
    TEXT_COLUMNS,
    VALUE_RANGES,
    fixed_columns,
)
from rankrobust.experiments.store import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "docs" / "results").glob("*/results.sqlite"))
DEMO = ROOT / "docs" / "results" / "demo-mnist5k-v2" / "results.sqlite"  # made at c38f577's schema

HEAD_SCHEMA = [
    ('table', 'meta', """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"""),
    ('index', 'sqlite_autoindex_meta_1', None),
    ('table', 'runs', """CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'complete', 'failed')),
    error TEXT, config TEXT NOT NULL, study TEXT, variant TEXT, label TEXT,
    dataset TEXT, model TEXT, method TEXT NOT NULL,
    method_params TEXT NOT NULL CHECK (json_valid(method_params)), seed INTEGER, clean_accuracy REAL, train_seconds REAL, eval_seconds REAL,
    started_at TEXT, finished_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, host TEXT,
    checkpoint TEXT, python_version TEXT, torch_version TEXT, numpy_version TEXT,
    rankrobust_version TEXT, warnings TEXT, traceback TEXT, registered_at TEXT, node TEXT,
    worker_pid INTEGER
)"""),
    ('index', 'sqlite_autoindex_runs_1', None),
    ('table', 'epoch_metrics', """CREATE TABLE epoch_metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id), epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, test_loss REAL, test_acc REAL, lr REAL, penalty REAL,
    epoch_seconds REAL, extra TEXT, PRIMARY KEY (run_id, epoch)
)"""),
    ('index', 'sqlite_autoindex_epoch_metrics_1', None),
    ('table', 'structure', """CREATE TABLE structure (
    run_id TEXT NOT NULL REFERENCES runs(run_id), epoch INTEGER NOT NULL, layer TEXT NOT NULL,
    kind TEXT, shape TEXT, rows INTEGER, cols INTEGER, effective_rank REAL,
    effective_sparsity REAL, stable_rank REAL, numerical_rank INTEGER, nuclear_norm REAL, spectral_norm REAL,
    frobenius_norm REAL, l1_norm REAL, normalized_effective_rank REAL,
    normalized_effective_sparsity REAL, extra TEXT, PRIMARY KEY (run_id, epoch, layer)
)"""),
    ('index', 'sqlite_autoindex_structure_1', None),
    ('table', 'robustness', """CREATE TABLE robustness (
    run_id TEXT NOT NULL REFERENCES runs(run_id), attack TEXT NOT NULL, norm TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}', epsilon REAL NOT NULL, fooling_ratio REAL,
    fooling_ratio_correct REAL, robust_accuracy REAL, clean_accuracy REAL, n INTEGER,
    extra TEXT, PRIMARY KEY (run_id, attack, norm, options, epsilon)
)"""),
    ('index', 'sqlite_autoindex_robustness_1', None),
    ('table', 'scalars', """CREATE TABLE scalars (
    run_id TEXT NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, name)
)"""),
    ('index', 'sqlite_autoindex_scalars_1', None),
    ('table', 'spectra', """CREATE TABLE spectra (
    run_id TEXT NOT NULL REFERENCES runs(run_id), layer TEXT NOT NULL, "index" INTEGER NOT NULL,
    singular_value REAL NOT NULL, PRIMARY KEY (run_id, layer, "index")
)"""),
    ('index', 'sqlite_autoindex_spectra_1', None),
    ('table', 'interventions', """CREATE TABLE interventions (
    run_id TEXT NOT NULL REFERENCES runs(run_id), intervention TEXT NOT NULL, layer TEXT NOT NULL,
    keep REAL NOT NULL, clean_accuracy REAL, robust_accuracy REAL, fooling_ratio REAL,
    rho_adv REAL, effective_rank REAL, effective_sparsity REAL, normalized_effective_rank REAL,
    normalized_effective_sparsity REAL, numerical_rank REAL, density REAL, attack TEXT NOT NULL,
    norm TEXT NOT NULL, epsilon REAL NOT NULL, n INTEGER, extra TEXT,
    PRIMARY KEY (run_id, intervention, layer, keep, attack, norm, epsilon)
)"""),
    ('index', 'sqlite_autoindex_interventions_1', None),
    ('table', 'point_robustness', """CREATE TABLE point_robustness (
    run_id TEXT NOT NULL REFERENCES runs(run_id), attack TEXT NOT NULL, norm TEXT NOT NULL,
    point INTEGER NOT NULL, eps_min REAL, PRIMARY KEY (run_id, attack, norm, point)
)"""),
    ('index', 'sqlite_autoindex_point_robustness_1', None),
    ('index', 'runs_status', """CREATE INDEX runs_status ON runs(status)"""),
]


def _tokens(sql: str | None) -> str | None:
    """``sql`` with its whitespace normalized (runs to one space, none inside parentheses)."""
    if sql is None:
        return None
    return re.sub(r"\s*\)", ")", re.sub(r"\(\s*", "(", " ".join(sql.split())))


def _master(path: Path) -> list[tuple[str, str, str | None]]:
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [(str(t), str(n), s) for t, n, s in
                con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY rowid")]
    finally:
        con.close()


def _pragmas(path: Path) -> dict[str, list[list[tuple[object, ...]]]]:
    """Every table's columns (name, type, NOT NULL, default, key position), indexes and
    foreign keys, as SQLite reads them back."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [str(n) for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [con.execute(f"PRAGMA {p}({t})").fetchall()
                    for p in ("table_info", "index_list", "foreign_key_list")] for t in tables}
    finally:
        con.close()


@pytest.fixture
def new_database(tmp_path: Path) -> Path:
    path = tmp_path / "results.sqlite"
    ResultsStore(path).close()
    return path


def test_a_new_database_declares_the_schema_of_before(new_database: Path) -> None:
    found = _master(new_database)
    assert [(t, n) for t, n, _ in found] == [(t, n) for t, n, _ in HEAD_SCHEMA]
    for (_, name, sql), (_, _, want) in zip(found, HEAD_SCHEMA, strict=True):
        assert _tokens(sql) == _tokens(want), name


def test_a_new_database_reads_back_like_the_committed_demo(new_database: Path) -> None:
    """Column names, types, NOT NULL, defaults, keys, indexes and foreign keys, in order."""
    assert _pragmas(new_database) == _pragmas(DEMO)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_databases_open_and_read(path: Path) -> None:
    """Each committed database (older ones lack the later columns and tables) reads through
    the store: every row of every table, and the runs with the columns of today."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    counts = {t.name: con.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0]
              for t in SCHEMA[1:] if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?",
                                                 (t.name,)).fetchone()}
    con.close()
    with ResultsStore(path, readonly=True) as store:
        assert store.integrity_check() == "ok"
        runs = store.runs()
        assert len(runs) == counts["runs"] and "node" in runs.columns
        for table in ("epoch_metrics", "structure", "robustness", "scalars", "spectra",
                      "interventions", "point_robustness"):
            assert len(getattr(store, table)()) == counts.get(table, 0), table


def test_every_declared_column_is_one_of_the_table() -> None:
    """The generated lists agree with the table they come from: ranges only on number columns,
    text columns never ranged, the later runs columns at the end (ALTER TABLE appends)."""
    for table in SCHEMA:
        for column in table.columns:
            assert column.type in ("TEXT", "INTEGER", "REAL"), column
            assert column.range is None or not column.text, column
            assert (not column.text or column.name in TEXT_COLUMNS or column.name == "extra"
                    or table.name == "meta"), column
        assert set(VALUE_RANGES.get(table.name, {})) <= {c.name for c in table.columns}
    runs = [c.name for c in SCHEMA[1].columns]
    assert runs[-len(ADDED_RUN_COLUMNS):] == [name for name, _ in ADDED_RUN_COLUMNS]
    assert fixed_columns("spectra") == ("layer", "index", "singular_value")
