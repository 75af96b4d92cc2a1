"""``rankrobust export DB --format parquet|csv --out DIR``: every store table round-trips, typed.

The reference is what :class:`ResultsStore` reads back (and, for claims, the report's claims.csv);
parquet needs pyarrow and the duckdb check needs duckdb (both skipped with the reason if absent).
Bad input (a non-empty or foreign folder, an unknown format, a foreign database) is one line on
stderr, exit 2, and nothing written.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from rankrobust.cli.main import main
from rankrobust.experiments.run import RunResult
from rankrobust.experiments.store import CHILD_TABLES, ResultsStore
from rankrobust.export.tables import flatten_configs, typed_column
from rankrobust.report.build import build_report
from test_report_build import make_db

try:
    import pyarrow  # noqa: F401

    HAVE_PYARROW = True
except ImportError:
    HAVE_PYARROW = False
STORE_TABLES = ("runs", *CHILD_TABLES)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make_db's study, plus one run with an intervention table (and an extra column) and a
    sweep session record, so that every table has rows."""
    path = make_db(tmp_path_factory.mktemp("export") / "results.sqlite", seeds=(0, 1))
    with ResultsStore(path) as store:
        rid = str(store.runs(status="complete")["run_id"].iloc[0])
        rows = [{"intervention": "svd", "layer": "all", "keep": keep, "clean_accuracy": 0.9,
                 "robust_accuracy": 0.2 + keep / 10, "fooling_ratio": 0.5, "attack": "pgd",
                 "norm": "inf", "epsilon": 0.1, "n": 64, "note": f"level {i}"}
                for i, keep in enumerate((0.25, 0.5, 1.0))]
        store.record(RunResult(run_id=rid, status="complete", clean_accuracy=0.9,
                               interventions=rows, history=[{"epoch": 1, "train_loss": 0.5}],
                               scalars={"rho_adv": 0.2}, spectra={"fc": [2.0, 1.0]},
                               points=[{"attack": "autoattack", "norm": "inf", "point": i,
                                        "eps_min": e} for i, e in enumerate((0.0, 0.05, math.nan))],
                               started_at="2026-01-01T00:00:00+00:00"))
        store.save_session("sweep/2026-01-01", {"command": "rankrobust sweep x", "seconds": 2.5,
                                                "versions": {"torch": "2.13.0"}, "workers": 2})
    return path


@pytest.fixture(scope="module")
def parquet_dir(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``db`` exported once as parquet (shared by the read-only tests below)."""
    if not HAVE_PYARROW:
        pytest.skip("pyarrow not installed (pip install pyarrow)")
    out = tmp_path_factory.mktemp("parquet") / "tables"
    assert main(["export", str(db), "--format", "parquet", "--out", str(out)]) == 0
    return out


def _store_frames(db: Path) -> dict[str, pd.DataFrame]:
    with ResultsStore(db, readonly=True) as store:
        frames = {name: getattr(store, name)() for name in STORE_TABLES}
        frames["sessions"] = store.sessions()
    return frames


def _export(db: Path, out: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(db), "--format", fmt, "--out", str(out)]) == 0
    assert f"tables in {out}" in capsys.readouterr().out


def _missing(value: object) -> bool:
    return not isinstance(value, (list, dict)) and bool(pd.isna(value))


def _same(read: pd.DataFrame, stored: pd.DataFrame, table: str, csv: bool = False) -> None:
    """``read`` holds ``stored``'s columns with equal values (missing = missing; in CSV an empty
    text is a missing value too: CSV cannot tell them apart)."""
    assert len(read) == len(stored), table
    for col in stored.columns:
        assert col in read.columns, f"{table}.{col} missing"
        a, b = read[col].reset_index(drop=True), stored[col].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(b) and b.notna().any():
            assert pd.api.types.is_numeric_dtype(a), f"{table}.{col} lost its number type"
            pd.testing.assert_series_equal(a.astype(float), b.astype(float), check_names=False,
                                           rtol=0, atol=0, obj=f"{table}.{col}")
        else:
            left = [None if pd.isna(v) else str(v) for v in a]
            right = [None if _missing(v) else json.dumps(v, sort_keys=True)
                     if isinstance(v, (list, dict)) else str(v) for v in b]  # nested: JSON text
            if csv:
                right = [v or None for v in right]
            assert left == right, f"{table}.{col}"


def test_parquet_round_trips_every_store_table_with_its_types(db: Path, parquet_dir: Path) -> None:
    out = parquet_dir
    stored = _store_frames(db)
    assert {p.name for p in out.iterdir()} == {f"{t}.parquet" for t in (*stored, "claims")}
    for name, frame in stored.items():
        assert len(frame), f"the fixture has no {name} rows: the round trip would prove nothing"
        read = pd.read_parquet(out / f"{name}.parquet")
        _same(read, frame, name)
        for col in frame.columns:  # stored types survive exactly (ints stay ints)
            if pd.api.types.is_integer_dtype(frame[col]):
                assert pd.api.types.is_integer_dtype(read[col]), f"{name}.{col}"
            if pd.api.types.is_float_dtype(frame[col]):
                assert pd.api.types.is_float_dtype(read[col]), f"{name}.{col}"
    runs = pd.read_parquet(out / "runs.parquet")
    for _, row in runs.iterrows():  # the flattened config is the stored config, leaf by leaf
        config = json.loads(row["config"])
        assert row["config.train.seed"] == config["train"]["seed"] == row["seed"]
        assert row["config.train.method.name"] == config["train"]["method"]["name"] == row["method"]
        assert json.loads(row["config.evaluation.attacks"]) == config["evaluation"]["attacks"]
        assert row["config.train.epochs"] == config["train"]["epochs"]
    assert pd.api.types.is_integer_dtype(runs["config.train.epochs"])


def test_claims_are_the_reports_claims(db: Path, parquet_dir: Path, tmp_path: Path) -> None:
    out = parquet_dir
    build_report(db, tmp_path / "report")
    report = pd.read_csv(tmp_path / "report" / "claims.csv")
    exported = pd.read_parquet(out / "claims.parquet")
    assert len(report) > 0
    assert set(exported["claim"]) >= {"C1", "C2", "C3", "C4"}
    text = exported.select_dtypes(exclude="number").columns  # CSV reads an empty text as missing
    exported[text] = exported[text].replace({"": None})
    _same(exported, report, "claims")


def test_csv_round_trips_every_store_table(db: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "parents" / "csv"  # created, as `report --out` does
    _export(db, out, "csv", capsys)
    for name, frame in _store_frames(db).items():
        # text columns read as text (run ids like '1234' must stay ids)
        text = {c: str for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])}
        _same(pd.read_csv(out / f"{name}.csv", dtype=text), frame, name, csv=True)
    assert (out / "claims.csv").stat().st_size > 0


def test_duckdb_reads_the_files_as_they_are(db: Path, parquet_dir: Path) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed")
    out = parquet_dir
    stored = _store_frames(db)
    query = (f"SELECT r.method, count(*) AS points, avg(c.fooling_ratio) AS fr "
             f"FROM '{out / 'robustness.parquet'}' c JOIN '{out / 'runs.parquet'}' r USING (run_id) "
             "WHERE r.status = 'complete' GROUP BY r.method ORDER BY r.method")
    got = duckdb.sql(query).df()
    curves = stored["robustness"].merge(stored["runs"][["run_id", "method", "status"]], on="run_id")
    want = curves.groupby("method")["fooling_ratio"].agg(["count", "mean"]).reset_index()
    assert got["method"].tolist() == want["method"].tolist()
    assert got["points"].tolist() == want["count"].tolist()
    assert got["fr"].to_numpy() == pytest.approx(want["mean"].to_numpy(), rel=1e-12)
    types = dict(duckdb.sql(f"DESCRIBE SELECT * FROM '{out / 'runs.parquet'}'").fetchall()[i][:2]
                 for i in range(3))
    assert types == {"run_id": "VARCHAR", "status": "VARCHAR", "error": "VARCHAR"}


def test_a_table_added_to_the_store_is_exported_too(db: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Tables come from the store's own list: a new one needs no change in the export."""
    import rankrobust.export.tables as tables

    def newer(self: ResultsStore) -> pd.DataFrame:
        return pd.DataFrame({"run_id": ["r"], "value": [1.5]})

    monkeypatch.setattr(tables, "CHILD_TABLES", (*CHILD_TABLES, "point_robustness"))
    monkeypatch.setattr(ResultsStore, "point_robustness", newer, raising=False)
    _export(db, tmp_path / "csv", "csv", capsys)
    assert pd.read_csv(tmp_path / "csv" / "point_robustness.csv")["value"].tolist() == [1.5]


def test_typed_columns_hold_one_type_each() -> None:
    assert str(typed_column(pd.Series([1, None, 3], dtype=object)).dtype) == "Int64"
    assert typed_column(pd.Series([1, 2.5], dtype=object)).tolist() == [1.0, 2.5]
    assert typed_column(pd.Series([True, None], dtype=object)).dtype == "boolean"
    mixed = typed_column(pd.Series([1, "a", [2]], dtype=object))
    assert mixed.tolist() == ["1", '"a"', "[2]"]
    flat = flatten_configs(pd.Series(['{"a": {"b": 1, "c": [1, 2]}}', '{"a": {"b": 2.5}}']))
    assert list(flat.columns) == ["config.a.b", "config.a.c"]
    assert flat["config.a.b"].tolist() == [1.0, 2.5]
    assert flat["config.a.c"].iloc[0] == "[1, 2]" and pd.isna(flat["config.a.c"].iloc[1])


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", ["non-empty", "a file", "unknown format", "foreign db",
                                  "missing db", "no target", "experiment without mlflow"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
        db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("keep")
    source, out, extra = str(db), work / "new", ["--format", "csv"]
    if case == "non-empty":
        out = work
    elif case == "a file":
        out = work / "mine.txt"
    elif case == "unknown format":
        extra = ["--format", "xlsx"]
    elif case == "foreign db":
        source = str(work / "other.sqlite")
        con = sqlite3.connect(source)
        con.execute("CREATE TABLE t (x)")
        con.close()
    elif case == "missing db":
        source = str(work / "absent.sqlite")
    before = _listing(work)
    argv = ["export", source, *extra, "--out", str(out)]
    if case == "no target":
        argv = ["export", source]
    elif case == "experiment without mlflow":
        argv += ["--experiment", "x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rankrobust: error: ") and err.count("\n") == 1, err
    assert _listing(work) == before
    assert (work / "mine.txt").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_parent_is_refused(db: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["export", str(db), "--format", "csv", "--out", str(locked / "x")]) == 2
    finally:
        locked.chmod(0o700)
    assert "cannot write" in capsys.readouterr().err


def test_a_failed_write_leaves_nothing_behind(db: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """All or nothing: a table that fails to write removes every file written before it."""
    import rankrobust.export.tables as tables

    calls = []

    def failing(frame: pd.DataFrame, path: Path, fmt: str) -> None:
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        frame.to_csv(path, index=False)

    monkeypatch.setattr(tables, "write_frame", failing)
    with pytest.raises(OSError):
        tables.write_tables(tables.study_tables(db, claims=False), tmp_path / "out", "csv")
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []
