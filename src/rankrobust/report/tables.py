"""The study's stored results as DataFrames: what every report function reads.

The report only reads; :func:`load_tables` opens the results database through
:class:`rankrobust.experiments.store.ResultsStore` and nothing else touches it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from rankrobust.errors import DataError
from rankrobust.experiments.store import ResultsStore
from rankrobust.report.stored import validate_robustness, validate_runs, validate_sessions

RUN_COLUMNS = [
    "run_id", "status", "error", "config", "dataset", "model", "method", "method_params", "seed",
    "clean_accuracy", "train_seconds", "eval_seconds", "started_at", "finished_at",
]
COMPLETE = "complete"  # the store's status of a run that finished with results


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass
class StudyTables:
    """The seven tables of a results store (column names as in the store's read methods)."""

    runs: pd.DataFrame = field(default_factory=lambda: _empty(RUN_COLUMNS))
    epoch_metrics: pd.DataFrame = field(default_factory=lambda: _empty(["run_id", "epoch"]))
    structure: pd.DataFrame = field(default_factory=lambda: _empty(["run_id", "epoch", "layer"]))
    robustness: pd.DataFrame = field(
        default_factory=lambda: _empty(["run_id", "attack", "norm", "epsilon", "fooling_ratio"])
    )
    scalars: pd.DataFrame = field(default_factory=lambda: _empty(["run_id", "name", "value"]))
    spectra: pd.DataFrame = field(
        default_factory=lambda: _empty(["run_id", "layer", "index", "singular_value"])
    )
    interventions: pd.DataFrame = field(
        default_factory=lambda: _empty(["run_id", "intervention", "layer", "keep", "robust_accuracy"])
    )
    # sweep sessions' provenance records (command, git commit, versions, wall seconds)
    sessions: pd.DataFrame = field(default_factory=lambda: _empty(["key", "command", "seconds"]))
    # per-point minimal perturbations, where the store keeps them (ResultsStore.point_robustness)
    points: pd.DataFrame = field(
        default_factory=lambda: _empty(["run_id", "attack", "norm", "point", "eps_min"])
    )
    # what was dropped from the sessions' records as of the wrong type (shown in the report)
    notes: list[str] = field(default_factory=list)

    def completed(self) -> StudyTables:
        """Only the runs that finished (status "complete"), in every table."""
        runs = self.runs
        if "status" in runs.columns and len(runs):
            runs = runs[runs["status"] == COMPLETE]
        keep = set(runs["run_id"])

        def sub(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["run_id"].isin(keep)].reset_index(drop=True)

        return StudyTables(
            runs.reset_index(drop=True), sub(self.epoch_metrics), sub(self.structure),
            sub(self.robustness), sub(self.scalars), sub(self.spectra), sub(self.interventions),
            self.sessions, sub(self.points), self.notes,
        )


def load_tables(db_path: str | os.PathLike[str]) -> StudyTables:
    """Read every table of the results database at ``db_path`` (raises DataError if missing).

    The database is opened read-only: a report never creates, migrates or locks a file, and a
    database that is not rankrobust's is refused untouched. Every stored number is range-checked
    as it is read (:func:`rankrobust.experiments.store.check_values`), every run's method
    columns must agree with its stored config (:meth:`ResultsStore.method_check`), and every
    stored JSON field the report reads is parsed and checked once here (:mod:`.stored`).
    """
    if not os.path.exists(db_path):
        raise DataError(f"no results database at {db_path}")
    with ResultsStore(db_path, readonly=True) as store:
        tables = StudyTables(
            runs=store.runs(), epoch_metrics=store.epoch_metrics(), structure=store.structure(),
            robustness=store.robustness(), scalars=store.scalars(), spectra=store.spectra(),
            interventions=store.interventions(), sessions=store.sessions(),
        )
        points = getattr(store, "point_robustness", None)  # stores that keep per-point budgets
        if points is not None:
            tables.points = points()
        agreement = store.method_check()  # runs are labelled by their method column
    if agreement != "ok":
        raise DataError(f"results database {db_path}: {agreement}")
    missing = [c for c in ("run_id", "model", "method", "seed") if c not in tables.runs.columns]
    if missing:
        raise DataError(f"{db_path}: the runs table lacks column {missing[0]!r}")
    tables.runs = validate_runs(tables.runs, str(db_path))
    tables.robustness = validate_robustness(tables.robustness, str(db_path))
    if len(tables.sessions):
        tables.sessions, tables.notes = validate_sessions(tables.sessions)
    return tables
