"""Stopping a sweep on purpose (SIGTERM: finish the runs in flight, start none) and the session
record kept up to date after every stored run, so a driver killed outright keeps its wall time."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from rankrobust.experiments import ResultsStore, StudyConfig, run_sweep, study_from_dict
from rankrobust.experiments.executors import SequentialExecutor
from rankrobust.experiments.run import RunResult
from rankrobust.experiments.sweep import STOPPED_EXIT
from rankrobust.report.provenance import provenance
from rankrobust.report.tables import load_tables


def study(seeds: int = 4) -> StudyConfig:
    return study_from_dict({
        "name": "stop", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu"}, "evaluation": {"n": 16},
        "seeds": list(range(seeds)),
    })


class Signalling(SequentialExecutor):
    """Sends this process SIGTERM ``times`` times just before running its first run."""

    def __init__(self, times: int, db: Path | None = None) -> None:
        super().__init__()
        self.times, self.db = times, db
        self.waits = 0
        self.sessions_seen: list[dict[str, object]] = []

    def wait(self) -> list[RunResult]:
        self.waits += 1
        if self.db is not None and self.waits > 1:  # what a reader sees while the sweep runs
            with ResultsStore(self.db, readonly=True) as store:
                self.sessions_seen.append(dict(store.sessions().iloc[0]))
        if self.waits == 1:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGTERM)
        return super().wait()


def statuses(db: Path) -> list[str]:
    with ResultsStore(db, readonly=True) as store:
        return sorted(store.runs()["status"])


def test_sigterm_finishes_the_run_in_flight_and_starts_no_other(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    ex = Signalling(times=1)
    before = signal.getsignal(signal.SIGTERM)  # not always SIG_DFL: a library may have set one
    summary = run_sweep(study(), out=tmp_path, executor=ex, progress=False)
    assert (summary.executed, summary.complete, summary.stopped) == (1, 1, 3)
    assert summary.exit_code == STOPPED_EXIT == 143
    assert "stopped on request with 3 run(s) still to do" in summary.line()
    assert statuses(summary.db) == ["complete"] + ["pending"] * 3
    assert "stop requested (SIGTERM)" in capfd.readouterr().err
    with ResultsStore(summary.db, readonly=True) as store:
        rec = store.sessions().iloc[0]
    assert rec["runs_executed"] == 1 and rec["seconds"] > 0 and rec["finished_at"]
    # the sweep's handler is gone with it: the one before is back
    assert signal.getsignal(signal.SIGTERM) is before

    again = run_sweep(study(), out=tmp_path, executor=SequentialExecutor(), progress=False)
    assert (again.skipped, again.complete, again.stopped, again.exit_code) == (1, 3, 0, 0)
    assert statuses(summary.db) == ["complete"] * 4


def test_a_second_sigterm_stops_at_once_and_the_run_in_flight_goes_back(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_sweep(study(), out=tmp_path, executor=Signalling(times=2), progress=False)
    assert statuses(tmp_path / "results.sqlite") == ["pending"] * 4
    with ResultsStore(tmp_path / "results.sqlite", readonly=True) as store:
        rec = store.sessions().iloc[0]
    assert rec["runs_executed"] == 0 and rec["finished_at"] and rec["seconds"] >= 0


def test_the_session_record_holds_the_time_so_far_after_every_stored_run(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite"
    ex = Signalling(times=0, db=db)
    run_sweep(study(3), out=tmp_path, executor=ex, progress=False)
    seen = ex.sessions_seen  # read before the 2nd and 3rd runs: 1, then 2 runs stored
    assert [int(s["runs_executed"]) for s in seen] == [1, 2]
    assert all(s["finished_at"] is None for s in seen)
    assert 0 < float(seen[0]["seconds"]) <= float(seen[1]["seconds"])  # type: ignore[arg-type]


def test_a_killed_sessions_time_to_its_last_run_is_summed_and_labelled(tmp_path: Path) -> None:
    from rankrobust.experiments.provenance import finish_record, session_record
    from rankrobust.experiments.store import SESSION_PREFIX

    db = tmp_path / "results.sqlite"
    with ResultsStore(db) as store:  # as the heartbeat leaves it when the machine goes away
        store.save_session(f"{SESSION_PREFIX}killed", {**finish_record(
            session_record("rankrobust reproduce", "local", 2), 3600.0, 5, 0), "finished_at": None})
        store.save_session(f"{SESSION_PREFIX}done", finish_record(
            session_record("rankrobust reproduce", "local", 2), 60.0, 1, 0))
    text, table = provenance(load_tables(db))
    assert "Wall time **1 h 01 min 00 s**, summed over 2 sweep session(s)" in text
    cells = sorted(table["wall time"])
    assert cells[0] == "1 h 00 min 00 s (to its last stored run: no end recorded, still running or killed)"
    assert cells[1] == "1 min 00 s"


def test_missing_data_stops_the_study_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One line naming the run and where it looked, exit 2, no folder, no database: not one
    failed run per config (a Fashion-MNIST study on a machine without the data once stored 186
    failed runs). The dry run notes it."""
    import yaml

    from rankrobust.cli.main import main

    spec: dict[str, object] = {"name": "nodata", "dataset": "synthetic", "model": "mlp",
            "model_options": {"hidden": [8]}, "train": {"epochs": 1}, "seeds": [0, 1],
            "variants": [{"name": "ok"}, {"name": "idx", "dataset": "mnist",
                                          "data_dir": str(tmp_path / "nowhere")}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rankrobust: error: mnist: no train IDX files")
    assert str(tmp_path / "nowhere") in err[0] and err[0].endswith("[run idx/seed=0]")
    assert not out.exists()
    # a dry run may count a study that runs elsewhere: it says so, and exits 0
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("data: not here (mnist: no train IDX files") and "[run idx/seed=0]" in last
    assert last.endswith("a sweep here would stop before writing anything") and not out.exists()
    spec["variants"] = [{"name": "ok"}]
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "data: every dataset loads here"


def test_a_report_of_a_study_whose_runs_all_failed_builds(tmp_path: Path) -> None:
    """No complete run: every claim not testable, no traceback (an empty frame once made the
    chance column text and the report raised TypeError)."""
    from rankrobust.report.build import build_report

    diverging = {"name": "allfail", "dataset": "synthetic", "model": "mlp",
                 "model_options": {"hidden": [8]}, "evaluation": {"n": 16}, "seeds": [0, 1],
                 "train": {"epochs": 2, "lr": 1e30}}
    summary = run_sweep(study_from_dict(diverging), out=tmp_path, executor=SequentialExecutor(),
                        progress=False)
    assert (summary.complete, summary.failed) == (0, 2)
    html = build_report(summary.db, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert html.exists() and "0 of 2 runs complete" in text
    assert text.count("| not testable |") == 6

