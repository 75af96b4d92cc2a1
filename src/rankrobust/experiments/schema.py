"""The results database's schema as one table of columns: every column is declared once here.

Each :class:`Column` states its SQL type (``TEXT`` columns are text, never range-checked; the
others are numbers), whether it may be NULL, any further SQL constraint, and the range a stored
value must lie in (checked on every read, :func:`rankrobust.experiments.values.check_values`).
From :data:`SCHEMA` come the DDL (:func:`ddl`), the column lists the store inserts and selects
(:func:`fixed_columns`, :data:`RUN_COLUMNS`, ...), the text columns and :data:`VALUE_RANGES`.

A column with ``extra=True`` is not an SQL column: it is one of the numbers stored in a table's
JSON ``extra`` column (metrics added by callbacks, the W − W₀ structure as ``delta_*``), listed
here only for its range. Nothing in this module touches a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEMA_VERSION = 2  # 2: one method column + JSON method_params (was λ₁, λ_*, ε columns)
STATUSES = ("pending", "running", "complete", "failed")

Range = tuple[float, float]  # (low, high), both inclusive; every stored number is also finite
UNIT: Range = (0.0, 1.0)
NONNEG: Range = (0.0, math.inf)
COUNT: Range = (1.0, math.inf)
_SQL_KEYWORDS = frozenset({"index"})  # column names quoted in SQL


@dataclass(frozen=True)
class Column:
    """One column: ``name``, SQL ``type`` (TEXT | INTEGER | REAL), NULL allowed unless
    ``null=False``, further SQL (``sql``: PRIMARY KEY, CHECK, DEFAULT, REFERENCES), the ``range``
    of its numbers (None: any finite number; never checked for text), ``extra``: kept in the
    table's JSON ``extra`` column, ``listed``: returned by ``ResultsStore.runs``."""

    name: str
    type: str
    null: bool = True
    sql: str = ""
    range: Range | None = None
    extra: bool = False
    listed: bool = True
    added: bool = False

    @property
    def text(self) -> bool:
        return self.type == "TEXT"

    def ddl(self) -> str:
        """The column's definition in CREATE TABLE."""
        return " ".join(p for p in (quote_name(self.name), self.type, "" if self.null else "NOT NULL", self.sql) if p)


@dataclass(frozen=True)
class Table:
    """A table: its columns in order, its PRIMARY KEY (none: a column says it), and
    ``later``: added after schema 2 was released (older files lack it and read as empty)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    later: bool = False


def _text(name: str, null: bool = True, sql: str = "") -> Column:
    return Column(name, "TEXT", null, sql)


def _int(name: str, range: Range | None = None, null: bool = True, sql: str = "") -> Column:
    return Column(name, "INTEGER", null, sql, range)


def _real(name: str, range: Range | None = None, null: bool = True) -> Column:
    return Column(name, "REAL", null, range=range)


def _extra(name: str, range: Range) -> Column:
    return Column(name, "REAL", range=range, extra=True)


_RUN_ID = _text("run_id", null=False, sql="REFERENCES runs(run_id)")
_EXTRA = _text("extra")  # JSON object: the row's columns outside the fixed schema
# structure of a weight matrix (rankrobust.structure.analyze): of W, and of W − W₀ as delta_*
_RANKS = (("effective_rank", NONNEG), ("effective_sparsity", NONNEG), ("stable_rank", NONNEG),
          ("numerical_rank", NONNEG), ("nuclear_norm", NONNEG), ("spectral_norm", NONNEG),
          ("frobenius_norm", NONNEG), ("l1_norm", NONNEG), ("normalized_effective_rank", UNIT),
          ("normalized_effective_sparsity", UNIT))
_RANK_RANGES = dict(_RANKS)

SCHEMA: tuple[Table, ...] = (
    Table("meta", (_text("key", sql="PRIMARY KEY"), _text("value", null=False))),
    Table("runs", (
        _text("run_id", sql="PRIMARY KEY"),
        _text("status", null=False, sql=f"CHECK (status IN {STATUSES!r})"),
        _text("error"), _text("config", null=False), _text("study"), _text("variant"),
        _text("label"), _text("dataset"), _text("model"), _text("method", null=False),
        _text("method_params", null=False, sql="CHECK (json_valid(method_params))"),
        _int("seed"), _real("clean_accuracy", UNIT), _real("train_seconds", NONNEG),
        _real("eval_seconds", NONNEG), _text("started_at"), _text("finished_at"),
        _int("attempts", NONNEG, null=False, sql="DEFAULT 0"), _text("host"), _text("checkpoint"),
        _text("python_version"), _text("torch_version"), _text("numpy_version"),
        _text("rankrobust_version"), _text("warnings"), _text("traceback"),
        Column("registered_at", "TEXT", listed=False),
        Column("node", "TEXT", added=True), Column("worker_pid", "INTEGER", range=COUNT, added=True),
    )),
    Table("epoch_metrics", (
        _RUN_ID, _int("epoch", NONNEG, null=False), _real("train_loss"), _real("train_acc", UNIT),
        _real("test_loss", NONNEG), _real("test_acc", UNIT), _real("lr", NONNEG), _real("penalty"),
        _real("epoch_seconds", NONNEG), _EXTRA,
        _extra("val_acc", UNIT), _extra("val_loss", NONNEG),
    ), key=("run_id", "epoch")),
    Table("structure", (
        _RUN_ID, _int("epoch", NONNEG, null=False), _text("layer", null=False), _text("kind"),
        _text("shape"), _int("rows", COUNT), _int("cols", COUNT),
        *(_int(n, r) if n == "numerical_rank" else _real(n, r) for n, r in _RANKS), _EXTRA,
        *(_extra(f"delta_{n}", r) for n, r in _RANKS),
    ), key=("run_id", "epoch", "layer")),
    Table("robustness", (
        _RUN_ID, _text("attack", null=False), _text("norm", null=False),
        _text("options", null=False, sql="DEFAULT '{}'"), _real("epsilon", NONNEG, null=False),
        _real("fooling_ratio", UNIT), _real("fooling_ratio_correct", UNIT),
        _real("robust_accuracy", UNIT), _real("clean_accuracy", UNIT), _int("n", COUNT), _EXTRA,
    ), key=("run_id", "attack", "norm", "options", "epsilon")),
    Table("scalars", (_RUN_ID, _text("name", null=False), _real("value")),  # range by name
          key=("run_id", "name")),
    Table("spectra", (_RUN_ID, _text("layer", null=False), _int("index", NONNEG, null=False),
                      _real("singular_value", NONNEG, null=False)),
          key=("run_id", "layer", "index")),
    Table("interventions", (
        _RUN_ID, _text("intervention", null=False), _text("layer", null=False),
        _real("keep", UNIT, null=False), _real("clean_accuracy", UNIT),
        _real("robust_accuracy", UNIT), _real("fooling_ratio", UNIT), _real("rho_adv", NONNEG),
        *(_real(n, _RANK_RANGES[n]) for n in ("effective_rank", "effective_sparsity",
                                              "normalized_effective_rank",
                                              "normalized_effective_sparsity", "numerical_rank")),
        _real("density", UNIT), _text("attack", null=False), _text("norm", null=False),
        _real("epsilon", NONNEG, null=False), _int("n", COUNT), _EXTRA,
        _extra("stable_rank", NONNEG),
    ), key=("run_id", "intervention", "layer", "keep", "attack", "norm", "epsilon")),
    Table("point_robustness", (
        _RUN_ID, _text("attack", null=False), _text("norm", null=False),
        _int("point", NONNEG, null=False), _real("eps_min", NONNEG),
    ), key=("run_id", "attack", "norm", "point"), later=True),
)
INDEXES = ("CREATE INDEX IF NOT EXISTS runs_status ON runs(status)",)
# columns that are not SQL columns but may come back from a table's JSON extra: text, unchecked
EXTRA_TEXT = frozenset({"broken_by"})  # AutoAttack's per-member counts (a JSON object)

TABLE = {t.name: t for t in SCHEMA}
CHILD_TABLES = tuple(t.name for t in SCHEMA if t.name not in ("meta", "runs"))
TABLES = frozenset(TABLE)
LATER_TABLES = frozenset(t.name for t in SCHEMA if t.later)  # schema-2 files made before them lack them
REQUIRED_TABLES = TABLES - LATER_TABLES
# runs columns added after schema 2 came out: (name, SQL type), added to older files on open
ADDED_RUN_COLUMNS = tuple((c.name, c.type) for c in TABLE["runs"].columns if c.added)


def sql_columns(table: str) -> tuple[Column, ...]:
    """The SQL columns of ``table``, in order (the ``extra``-stored ones left out)."""
    return tuple(c for c in TABLE[table].columns if not c.extra)


def fixed_columns(table: str) -> tuple[str, ...]:
    """The columns a child row fills by name: every SQL column but ``run_id`` and ``extra``."""
    return tuple(c.name for c in sql_columns(table) if c.name not in ("run_id", "extra"))


def ddl(table: Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``table``: its columns, then its primary key."""
    parts = [c.ddl() for c in table.columns if not c.extra]
    if table.key:
        parts.append(f"PRIMARY KEY ({', '.join(quote_name(k) for k in table.key)})")
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n    " + ",\n    ".join(parts) + "\n)"


def quote_name(name: str) -> str:
    """``name`` as SQL writes it: quoted when it is a keyword (``"index"``)."""
    return f'"{name}"' if name in _SQL_KEYWORDS else name


def schema_statements() -> tuple[str, ...]:
    """Every statement that creates the schema, in order (each idempotent)."""
    return (*(ddl(t) for t in SCHEMA), *INDEXES)


RUN_COLUMNS = tuple(c.name for c in sql_columns("runs") if c.listed)
EPOCH_COLUMNS = fixed_columns("epoch_metrics")
STRUCTURE_COLUMNS = fixed_columns("structure")
ROBUSTNESS_COLUMNS = fixed_columns("robustness")
INTERVENTION_COLUMNS = fixed_columns("interventions")
POINT_COLUMNS = tuple(c.name for c in sql_columns("point_robustness"))
# columns of text (ids, names, JSON, timestamps): never range-checked
TEXT_COLUMNS = frozenset({c.name for t in SCHEMA if t.name != "meta" for c in t.columns
                          if c.text and c.name != "extra"} | EXTRA_TEXT)
# What a stored number may be, per table and column, checked on every read: (low, high), both
# inclusive, and finite. NULL (a missing value or NaN) is allowed. A column without a range
# (losses of custom objectives, penalties, extra callback metrics) must only be finite. A value
# outside these ranges can only come from a hand-edited or corrupted file, and the report would
# otherwise turn it into a verdict.
VALUE_RANGES: dict[str, dict[str, Range]] = {
    t.name: {c.name: c.range for c in t.columns if c.range is not None}
    for t in SCHEMA if any(c.range is not None for c in t.columns)
}
# scalars: (run_id, name, value), the range by name (others: finite)
SCALAR_RANGES = {"rho_adv": NONNEG, "final_test_acc": UNIT, "final_train_acc": UNIT,
                 "final_val_acc": UNIT, "final_test_loss": NONNEG, "final_val_loss": NONNEG}
# curve summaries stored as "{attack}_{norm}_{summary}" (experiments.run, robustness.summaries)
SUMMARY_RANGES = {"_area": UNIT, "_eps50": NONNEG, "_eps_min_q25": NONNEG, "_eps_min_q50": NONNEG,
                  "_eps_min_q75": NONNEG}


def scalar_range(name: str) -> Range:
    """(low, high) of scalar ``name``: :data:`SCALAR_RANGES`, a curve summary's by its suffix,
    else any finite number."""
    if name in SCALAR_RANGES:
        return SCALAR_RANGES[name]
    for suffix, bounds in SUMMARY_RANGES.items():
        if name.endswith(suffix):
            return bounds
    return (-math.inf, math.inf)
