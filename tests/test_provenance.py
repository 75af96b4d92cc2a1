"""Provenance: sweep sessions record command, commit, versions and wall time; the report shows them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from rankrobust.experiments.provenance import finish_record, git_commit, session_record
from rankrobust.experiments.store import SESSION_PREFIX, ResultsStore
from rankrobust.report.provenance import provenance
from rankrobust.report.tables import load_tables


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return repo


def test_git_commit_is_head_and_says_dirty(repo: Path, tmp_path: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    (repo / "a.txt").write_text("two\n")
    assert git_commit(repo) == head + "+dirty"
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_commit(outside) is None or not str(git_commit(outside)).startswith(head)


def test_sessions_round_trip_and_hostile_records_are_skipped(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    record = session_record("rankrobust reproduce --scale smoke", "local", 2)
    assert record["versions"]["torch"] and record["finished_at"] is None
    done = finish_record(record, 12.5, executed=3, failed=1)
    with ResultsStore(db) as store:
        store.save_session(f"{SESSION_PREFIX}a", record)
        store.save_session(f"{SESSION_PREFIX}a", done)  # the same session, finished
        store.save_session(f"{SESSION_PREFIX}b", {**done, "seconds": 7.5})
        with pytest.raises(ValueError, match="session keys"):
            store.save_session("schema_version", done)
    con = sqlite3.connect(db)
    with con:  # edited by hand: not JSON, not an object, a negative wall time
        con.executemany("INSERT INTO meta VALUES (?, ?)", [
            (f"{SESSION_PREFIX}c", "{not json"), (f"{SESSION_PREFIX}d", "[1, 2]"),
            (f"{SESSION_PREFIX}e", json.dumps({**done, "seconds": -5})),
        ])
    con.close()
    with ResultsStore(db, readonly=True) as store:
        sessions = store.sessions()
    assert list(sessions["key"]) == [f"{SESSION_PREFIX}{k}" for k in "abe"]
    assert sessions["seconds"].iloc[:2].tolist() == [12.5, 7.5] and sessions["seconds"].isna().iloc[2]
    assert sessions["runs_executed"].iloc[0] == 3


def test_report_shows_the_sessions_and_their_total_wall_time(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    with ResultsStore(db) as store:
        for key, seconds in (("x", 3600.0), ("y", 125.0)):
            rec = finish_record(session_record("rankrobust reproduce --scale paper", "local", 2),
                                seconds, executed=5, failed=0)
            store.save_session(f"{SESSION_PREFIX}{key}", rec)
    text, table = provenance(load_tables(db))
    assert "Wall time **1 h 02 min 05 s**, summed over 2 sweep session(s)" in text
    assert "torch" in text
    assert list(table["command"]) == ["`rankrobust reproduce --scale paper`"] * 2
    assert list(table["wall time"]) == ["1 h 00 min 00 s", "2 min 05 s"]
    assert "no end recorded" not in text


@pytest.mark.parametrize("finished", [0, 1])
def test_a_session_still_running_is_not_summed_as_zero(tmp_path: Path, finished: int) -> None:
    db = tmp_path / "results.sqlite"
    with ResultsStore(db) as store:
        store.save_session(f"{SESSION_PREFIX}running", session_record("rankrobust sweep s.yaml", "local", 2))
        if finished:
            store.save_session(f"{SESSION_PREFIX}done", finish_record(
                session_record("rankrobust sweep s.yaml", "local", 2), 90.0, executed=1, failed=0))
    text, table = provenance(load_tables(db))
    assert "1 session(s) with no end recorded (still running, or killed)" in text
    assert ("Wall time **1 min 30 s**, summed over 1 sweep session(s)" in text) == bool(finished)
    assert "0 min 00 s" not in text and "–" in list(table["wall time"])


def test_a_sweep_records_its_session_and_a_rerun_with_nothing_to_do_does_not(tmp_path: Path) -> None:
    from rankrobust.cli.main import main

    study = tmp_path / "study.yaml"
    study.write_text(
        "name: prov\ndataset: synthetic\nmodel: mlp\nmodel_options: {hidden: [8]}\n"
        "train: {epochs: 1, batch_size: 64}\nseeds: [0]\n"
    )
    out = tmp_path / "out"
    args = ["sweep", str(study), "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0  # resumes: nothing to run, no second record
    with ResultsStore(out / "results.sqlite", readonly=True) as store:
        sessions = store.sessions()
    assert len(sessions) == 1
    rec = sessions.iloc[0]
    assert rec["command"] == "rankrobust " + " ".join(args)
    assert rec["runs_executed"] == 1 and rec["runs_failed"] == 0 and rec["seconds"] > 0
    assert rec["executor"] == "local" and rec["workers"] == 1 and "stack" not in rec
    assert rec["git_commit"] is None or len(str(rec["git_commit"]).split("+")[0]) == 40


def test_session_records_from_before_stacking_was_removed_still_read(tmp_path: Path) -> None:
    """A database written while ``--stack`` existed (its records hold ``"stack": false``, e.g.
    the committed demo database) reads unchanged: the field is kept and passes the report's
    checks, as does a record with ``"stack": true``."""
    import shutil

    from rankrobust.report.stored import validate_sessions

    db = tmp_path / "old.sqlite"
    shutil.copyfile(Path(__file__).parents[1] / "docs/results/demo-mnist5k-v2/results.sqlite", db)
    with ResultsStore(db) as store:
        store.save_session("sweep/old/1", {"command": "rankrobust sweep s.yaml --stack",
                                           "executor": "local", "workers": 2, "stack": True})
    with ResultsStore(db, readonly=True) as store:
        sessions = store.sessions()
    checked, notes = validate_sessions(sessions)
    assert notes == []
    assert set(checked["stack"]) == {False, True}
