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
