"""Per-input minimal budgets in the results database (``point_robustness``), curve summaries
stored as scalars, and databases made before the table."""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rankrobust.errors import DataError
from rankrobust.experiments import ResultsStore, expand, study_from_dict
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult, execute_run

STUDY: dict[str, Any] = {
    "name": "t", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
    "train": {"epochs": 1, "device": "cpu", "track_structure": False},
    "evaluation": {"n": 24, "batch_size": 10, "spectra": False, "attacks": [
        {"attack": "autoattack", "norm": "inf", "epsilons": [0.05, 0.1, 0.15, 0.2],
         "options": {"grid": True, "steps": 5, "n_targets": 2, "n_queries": 20}},
        {"attack": "fgsm", "norm": "inf", "epsilons": [0.1]},
    ]},
    "seeds": [0, 1],
}
COLUMNS = ["run_id", "attack", "norm", "point", "eps_min"]


def _store(path: Path, points: list[dict[str, Any]]) -> str:
    (config, *_) = expand(study_from_dict(STUDY))
    rid = run_id(config)
    with ResultsStore(path) as store:
        store.register([config])
        store.record(RunResult(run_id=rid, status="complete", points=points))
    return rid


def test_points_round_trip_with_nan_for_unbroken(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    rid = _store(db, [{"attack": "autoattack", "norm": "inf", "point": i, "eps_min": e}
                      for i, e in enumerate([0.0, 0.1, math.nan, 0.05])])
    with ResultsStore(db, readonly=True) as store:
        frame = store.point_robustness()
        assert store.point_robustness([rid]).equals(frame)
        assert store.point_robustness(["other"]).empty
    assert list(frame.columns) == COLUMNS
    assert frame["point"].dtype == np.int64 and frame["eps_min"].dtype == np.float64
    assert frame["point"].tolist() == [0, 1, 2, 3]
    assert frame["eps_min"].tolist()[:2] == [0.0, 0.1] and math.isnan(frame["eps_min"].iloc[2])
    assert (frame["run_id"] == rid).all()


def test_a_database_made_before_the_table_still_opens(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _store(db, [])
    con = sqlite3.connect(db)
    con.execute("DROP TABLE point_robustness")
    con.commit()
    con.close()
    with ResultsStore(db, readonly=True) as store:
        frame = store.point_robustness()
        assert list(frame.columns) == COLUMNS and frame.empty
        assert frame["eps_min"].dtype == np.float64
    with ResultsStore(db) as store:  # a writer adds the empty table
        assert store.point_robustness().empty
    con = sqlite3.connect(db)
    assert con.execute("SELECT name FROM sqlite_master WHERE name = 'point_robustness'").fetchone()
    con.close()


@pytest.mark.parametrize(("sql", "needle"), [
    ("eps_min = -0.1", "point_robustness.eps_min = -0.1"),
    ("eps_min = 9e999", "point_robustness.eps_min = inf"),
    ("eps_min = 'far'", "point_robustness.eps_min = 'far'"),
    ("point = -1", "point_robustness.point = -1"),
])
def test_stored_points_are_range_checked(tmp_path: Path, sql: str, needle: str) -> None:
    db = tmp_path / "r.sqlite"
    _store(db, [{"attack": "autoattack", "norm": "inf", "point": 0, "eps_min": 0.1}])
    con = sqlite3.connect(db)
    con.execute(f"UPDATE point_robustness SET {sql}")
    con.commit()
    con.close()
    with ResultsStore(db, readonly=True) as store, pytest.raises(DataError, match=needle):
        store.point_robustness()


def test_summary_scalars_are_range_checked(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    (config, *_) = expand(study_from_dict(STUDY))
    with ResultsStore(db) as store:
        store.register([config])
        store.record(RunResult(run_id=run_id(config), status="complete",
                               scalars={"autoattack_inf_area": 1.5}))
        with pytest.raises(DataError, match="autoattack_inf_area' = 1.5"):
            store.scalars()


def test_study_runs_store_points_and_summaries(tmp_path: Path) -> None:
    configs = expand(study_from_dict(STUDY))
    results = [execute_run(c) for c in configs]
    assert all(r.ok for r in results), [r.error for r in results]
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        store.register(configs)
        for r in results:
            store.record(r)
        points, curves, scalars = store.point_robustness(), store.robustness(), store.scalars()
    assert set(points["attack"]) == {"autoattack"}  # the primary curve only
    for rid, group in points.groupby("run_id"):
        assert group["point"].tolist() == list(range(24))  # the same test points in every run
        eps_min = group["eps_min"].to_numpy()
        curve = curves[(curves["run_id"] == rid) & (curves["attack"] == "autoattack")]
        for eps, acc in zip(curve["epsilon"], curve["robust_accuracy"], strict=True):
            assert acc == pytest.approx(np.mean(np.isnan(eps_min) | (eps_min > eps)))
        mine = scalars[scalars["run_id"] == rid].set_index("name")["value"]
        assert {"autoattack_inf_area", "autoattack_inf_eps50", "autoattack_inf_eps_min_q50"} \
            <= set(mine.index)
        clean = float(curve["clean_accuracy"].iloc[0])
        assert 0 <= mine["autoattack_inf_area"] <= clean
    assert isinstance(points, pd.DataFrame)


@pytest.mark.parametrize(("attack", "options", "needle"), [
    ("pgd", {"grid": True}, "attacks[0].options.grid: only autoattack takes it, not pgd"),
    ("fgsm", {"bisect": 2}, "attacks[0].options.bisect: only autoattack takes it"),
    ("autoattack", {"grid": "yes"}, "attacks[0].options.grid: true or false"),
    ("autoattack", {"grid": True, "bisect": 21}, "attacks[0].options.bisect: an integer in 0..20"),
    ("autoattack", {"bisect": True}, "attacks[0].options.bisect: an integer in 0..20"),
])
def test_grid_options_are_checked_with_the_study(attack: str, options: dict[str, Any],
                                                 needle: str) -> None:
    from rankrobust.errors import ConfigError

    study = {**STUDY, "evaluation": {"n": 8, "attacks": [
        {"attack": attack, "norm": "inf", "epsilons": [0.1], "options": options}]}}
    with pytest.raises(ConfigError, match=re.escape(needle)):
        expand(study_from_dict(study))
