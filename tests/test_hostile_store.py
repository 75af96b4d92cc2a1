"""Hostile results databases: foreign files are refused untouched, readers never write, the
sweep lock follows the real file and is never left behind, seeds fit SQLite."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from rankrobust.cli.main import main
from rankrobust.errors import ConfigError
from rankrobust.experiments import ResultsStore, expand, study_from_dict
from rankrobust.experiments.store import inspect_database
from rankrobust.experiments.sweep import exclusive, lock_path

STUDY: dict[str, Any] = {
    "name": "t", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [4]},
    "train": {"epochs": 1, "device": "cpu"}, "evaluation": {"n": 8}, "seeds": [0],
}


def _snapshot(folder: Path) -> dict[str, str]:
    """{file name: sha256} of everything in ``folder``: equal snapshots = untouched."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file()}


def _foreign(path: Path, wal: bool = False) -> None:
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
    con.execute("INSERT INTO accounts VALUES (1, 'alice')")
    con.commit()
    con.close()


def _ours(path: Path) -> None:
    with ResultsStore(path) as store:
        store.register(expand(study_from_dict(STUDY)))


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("rankrobust: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "study" / "s.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(STUDY))
    return path


@pytest.mark.parametrize("wal", [False, True])
def test_foreign_database_is_refused_untouched_by_every_command(
    tmp_path: Path, study_file: Path, capsys: pytest.CaptureFixture[str], wal: bool
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "app.sqlite"
    _foreign(db, wal)
    before = _snapshot(folder)
    for argv in (["runs", "--db", str(db)],
                 ["report", str(db), "--out", str(tmp_path / "report")],
                 ["sweep", str(study_file), "--db", str(db), "--out", str(tmp_path / "out")],
                 ["sweep", str(study_file), "--db", str(db), "--dry-run"]):
        assert main(argv) == 2, argv
        assert "not a rankrobust results database" in _one_error(capsys)
        assert _snapshot(folder) == before, argv  # no journal change, no -wal/-shm, no .lock
    assert not (tmp_path / "report").exists()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == ("wal" if wal else "delete")
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["accounts"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "empty database"), (b"not a database at all" * 20, "not a database"),
     (None, "no results database")],
)
def test_readers_refuse_missing_empty_and_non_sqlite_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, needle: str
) -> None:
    db = tmp_path / "r.sqlite"
    if content is not None:
        db.write_bytes(content)
    assert main(["runs", "--db", str(db)]) == 2
    assert needle in _one_error(capsys)
    assert main(["report", str(db), "--out", str(tmp_path / "rep")]) == 2
    assert needle in _one_error(capsys)
    assert (db.read_bytes() if content is not None else None) == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ([db.name] if content is not None else [])


def test_other_schema_version_and_extra_tables_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    _ours(db)
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    for readonly in (False, True):
        with pytest.raises(ConfigError, match="schema 1, expected"):
            ResultsStore(db, readonly=readonly)
    _ours(tmp_path / "s.sqlite")
    con = sqlite3.connect(tmp_path / "s.sqlite")
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match=r"other tables \(notes\)"):
        ResultsStore(tmp_path / "s.sqlite")


def test_special_files_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for name in ("fifo", "folder"):
        for readonly in (False, True):
            with pytest.raises(ConfigError, match="not a regular file"):
                ResultsStore(tmp_path / name, readonly=readonly)


def test_readers_open_read_only_and_never_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "r.sqlite"
    _ours(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    assert main(["runs", "--db", str(db), "--format", "csv"]) == 0
    assert "pending" in capsys.readouterr().out
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    with ResultsStore(db, readonly=True) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
            store._con.execute("DELETE FROM runs")
        assert len(store.runs()) == 1
    # a folder nobody can write (as on read-only media): opened immutable, no side files
    for side in ("-wal", "-shm"):
        Path(f"{db}{side}").unlink(missing_ok=True)
    monkeypatch.setattr("rankrobust.experiments.store.os.access", lambda *a, **k: False)
    with ResultsStore(db, readonly=True) as store:
        assert len(store.runs()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_readonly_store_never_creates_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no results database"):
        ResultsStore(tmp_path / "new.sqlite", readonly=True)
    assert not (tmp_path / "new.sqlite").exists()
    assert inspect_database(tmp_path / "new.sqlite") is True  # a writer would create it


def test_sweep_lock_follows_the_real_file_and_is_removed(tmp_path: Path) -> None:
    real = tmp_path / "real.sqlite"
    link = tmp_path / "link.sqlite"
    link.symlink_to(real)
    assert lock_path(link) == lock_path(real) == tmp_path / "real.sqlite.lock"
    assert lock_path(tmp_path / "sub" / ".." / "real.sqlite") == lock_path(real)
    with exclusive(real):
        assert lock_path(real).exists()
        with pytest.raises(ConfigError, match="another sweep"), exclusive(link):
            pass
    assert not lock_path(real).exists()
    with exclusive(link):  # the next holder gets a fresh lock file
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.sqlite"]


def test_seeds_must_fit_sqlite_integers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed in (2**64, 2**63, -1):
        with pytest.raises(ConfigError, match=r"seeds: .*0\.\.2\*\*63-1"):
            study_from_dict({**STUDY, "seeds": [seed]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "seeds": [2**64]}))
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "seeds" in _one_error(capsys)
    top = 2**63 - 1
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        store.register(expand(study_from_dict({**STUDY, "seeds": [top]})))
        assert int(store.runs()["seed"].iloc[0]) == top


# -- numbers read back: range-checked, never reported as they are ------------------------------
def _complete(path: Path) -> str:
    """A database with one complete run holding a row in every table; returns its run id."""
    from rankrobust.experiments.grid import run_id
    from rankrobust.experiments.run import RunResult

    (config,) = expand(study_from_dict(STUDY))
    rid = run_id(config)
    structure = {"epoch": 1, "layer": "0", "kind": "linear", "shape": "4x256", "rows": 4,
                 "cols": 256, "effective_rank": 3.5, "effective_sparsity": 700.0,
                 "stable_rank": 2.0, "numerical_rank": 4, "nuclear_norm": 5.0, "spectral_norm": 2.0,
                 "frobenius_norm": 3.0, "l1_norm": 40.0, "normalized_effective_rank": 0.875,
                 "normalized_effective_sparsity": 0.68}
    curve = {"attack": "pgd", "norm": "inf", "options": "{}", "epsilon": 0.1, "fooling_ratio": 0.5,
             "fooling_ratio_correct": 0.5, "robust_accuracy": 0.4, "clean_accuracy": 0.8, "n": 8}
    cut = {"intervention": "truncate", "layer": "all", "keep": 0.5, "clean_accuracy": 0.7,
           "robust_accuracy": 0.3, "fooling_ratio": 0.6, "rho_adv": 0.1, "effective_rank": 2.0,
           "effective_sparsity": 500.0, "normalized_effective_rank": 0.5,
           "normalized_effective_sparsity": 0.5, "numerical_rank": 2, "density": 1.0,
           "attack": "pgd", "norm": "inf", "epsilon": 0.1, "n": 8}
    with ResultsStore(path) as store:
        store.register([config])
        store.record(RunResult(
            run_id=rid, status="complete", clean_accuracy=0.8, train_seconds=1.0, eval_seconds=0.5,
            history=[{"epoch": 1, "train_loss": 0.9, "train_acc": 0.7, "test_loss": 0.8,
                      "test_acc": 0.8, "lr": 0.002, "penalty": 0.0, "epoch_seconds": 0.1,
                      "val_acc": 0.75}],
            structure=[structure], robustness=[curve], interventions=[cut],
            scalars={"rho_adv": 0.2, "final_test_acc": 0.8}, spectra={"0": [2.0, 1.0, 0.5]},
        ))
    return rid


HOSTILE_VALUES = [
    ("runs", "clean_accuracy", "1.7", "runs.clean_accuracy = 1.7", "outside [0, 1]"),
    ("runs", "train_seconds", "-5", "runs.train_seconds = -5", "outside [0, inf]"),
    ("robustness", "fooling_ratio", "-0.2", "robustness.fooling_ratio = -0.2", "outside [0, 1]"),
    ("robustness", "robust_accuracy", "9e999", "robustness.robust_accuracy = inf", "not finite"),
    ("robustness", "epsilon", "-0.1", "robustness.epsilon = -0.1", "outside [0, inf]"),
    ("structure", "effective_rank", "-3", "structure.effective_rank = -3", "outside [0, inf]"),
    ("structure", "normalized_effective_rank", "1.5", "normalized_effective_rank = 1.5", "[0, 1]"),
    ("structure", "spectral_norm", "'big'", "structure.spectral_norm = 'big'", "not a number"),
    ("epoch_metrics", "test_acc", "2", "epoch_metrics.test_acc = 2", "outside [0, 1]"),
    ("epoch_metrics", "train_loss", "-9e999", "epoch_metrics.train_loss = -inf", "not finite"),
    ("epoch_metrics", "extra", "'{\"val_acc\": 1.2}'", "epoch_metrics.val_acc = 1.2", "[0, 1]"),
    ("spectra", "singular_value", "-1", "spectra.singular_value = -1", "outside [0, inf]"),
    ("scalars", "value", "-0.5", "scalar 'final_test_acc' = -0.5", "outside [0, 1]"),
    ("interventions", "keep", "2", "interventions.keep = 2", "outside [0, 1]"),
    ("interventions", "rho_adv", "-1", "interventions.rho_adv = -1", "outside [0, inf]"),
]


@pytest.mark.parametrize(("table", "column", "sql", "needle", "why"), HOSTILE_VALUES,
                         ids=[f"{t}.{c}" for t, c, *_ in HOSTILE_VALUES])
def test_report_refuses_stored_numbers_outside_their_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, column: str, sql: str,
    needle: str, why: str,
) -> None:
    db = tmp_path / "r.sqlite"
    rid = _complete(db)
    con = sqlite3.connect(db)
    con.execute(f"UPDATE {table} SET {column} = {sql}")  # every row of the table: one run
    con.commit()
    con.close()
    out = tmp_path / "report"
    assert main(["report", str(db), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert needle in err and why in err and rid in err, err
    assert not (out / "report.html").exists()
    if table == "runs":
        assert main(["runs", "--db", str(db)]) == 2
        assert needle in _one_error(capsys)


def test_valid_stored_numbers_are_read_back_unchanged(tmp_path: Path) -> None:
    from rankrobust.report.tables import load_tables

    db = tmp_path / "r.sqlite"
    _complete(db)
    tables = load_tables(db)
    assert float(tables.runs["clean_accuracy"].iloc[0]) == 0.8
    assert float(tables.epoch_metrics["val_acc"].iloc[0]) == 0.75
    assert tables.spectra["singular_value"].tolist() == [2.0, 1.0, 0.5]
    assert set(tables.scalars["name"]) == {"rho_adv", "final_test_acc"}


@pytest.mark.parametrize(("sql", "needle"), [
    ("method = 'nuclear'", "method/method_params disagree with its config"),
    ("method_params = '{\"lambda_l1\": 1}'", "method/method_params disagree with its config"),
    ("seed = 7", "column seed = 7 disagrees with its config (0)"),
    ("model = 'lenet5'", "column model = 'lenet5' disagrees with its config ('mlp')"),
    ("dataset = 'mnist'", "column dataset = 'mnist' disagrees"),
])
def test_report_refuses_identity_columns_that_disagree_with_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str, needle: str
) -> None:
    db = tmp_path / "r.sqlite"
    rid = _complete(db)
    con = sqlite3.connect(db)
    con.execute(f"UPDATE runs SET {sql}")  # would be grouped, paired or labelled wrongly
    con.commit()
    con.close()
    assert main(["report", str(db), "--out", str(tmp_path / "report")]) == 2
    err = _one_error(capsys)
    assert needle in err and rid in err, err
