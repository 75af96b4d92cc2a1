"""The sweep driver with executors that lose tasks, lose their cluster, or grow (no Ray needed:
in-process executors that act as a Ray cluster would); and where each run ran, in the store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from rankrobust.cli.main import main
from rankrobust.experiments import ResultsStore, StudyConfig, run_id, run_sweep, study_from_dict
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.executors import ClusterLostError, SequentialExecutor
from rankrobust.experiments.run import RunResult, failed_result
from rankrobust.experiments.sweep import MAX_ATTEMPTS


def study(seeds: Sequence[int] = (0, 1), broken: bool = False) -> StudyConfig:
    variants: list[dict[str, object]] = [{"name": "ok"}]
    if broken:
        variants.append({"name": "broken", "train": {"epochs": 2, "lr": 1e30}})  # diverges
    return study_from_dict({
        "name": "faults", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu"}, "evaluation": {"n": 16},
        "seeds": list(seeds), "variants": variants,
    })


class Losing(SequentialExecutor):
    """Loses the first ``losses`` submits of each run (as a dead node would), then runs it."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses
        self.submits: dict[str, int] = {}
        self._lines: list[str] = []

    def submit(self, config: RunConfig) -> None:
        self.submits[run_id(config)] = self.submits.get(run_id(config), 0) + 1
        super().submit(config)

    def wait(self) -> list[RunResult]:
        rid = run_id(self._queue[0])
        if self.submits[rid] > self.losses:
            return super().wait()
        self._queue.pop(0)
        self._lines.append(f"lost {rid}")
        lost = failed_result(rid, RuntimeError("NodeDiedError: node gone"))
        lost.lost = True
        return [lost]

    def notices(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines


def test_a_lost_run_runs_again_and_a_run_that_raised_does_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each task lost twice: the third submit completes it (attempts 3); the broken runs raise
    on their third submit and are stored failed then, not run a fourth time."""
    ex = Losing(losses=MAX_ATTEMPTS - 1)
    summary = run_sweep(study(broken=True), out=tmp_path, executor=ex, progress=False)
    assert (summary.complete, summary.failed) == (2, 2)
    assert set(ex.submits.values()) == {MAX_ATTEMPTS}
    with ResultsStore(summary.db, readonly=True) as store:
        runs = store.runs().set_index("variant")
    assert (runs.attempts == MAX_ATTEMPTS).all()
    assert set(runs.loc["ok"].status) == {"complete"}
    assert runs.loc["broken"].error.str.startswith("TrainingDivergedError").all()
    err = capsys.readouterr().err.splitlines()
    assert sorted(line for line in err if line.startswith("lost ")) == sorted(
        f"lost {rid}" for rid in runs.run_id for _ in range(MAX_ATTEMPTS - 1))


def test_a_run_lost_every_time_fails_after_the_last_attempt(tmp_path: Path) -> None:
    ex = Losing(losses=10**6)
    summary = run_sweep(study(seeds=[0]), out=tmp_path, executor=ex, progress=False)
    assert (summary.complete, summary.failed, summary.exit_code) == (0, 1, 1)
    assert list(ex.submits.values()) == [MAX_ATTEMPTS]
    with ResultsStore(summary.db, readonly=True) as store:
        row = store.runs().iloc[0]
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert "NodeDiedError" in row.error


class Vanishing(SequentialExecutor):
    """Two tasks in flight at once; the cluster goes away at the ``at``-th wait."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.waits = at, 0

    @property
    def capacity(self) -> int:
        return 2

    def wait(self) -> list[RunResult]:
        self.waits += 1
        if self.waits == self.at:
            raise ClusterLostError("the Ray cluster (test) went away (its GCS does not answer)")
        return super().wait()


def test_a_lost_cluster_returns_the_runs_in_flight_to_pending(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three runs, two in flight; the first finishes, then the cluster goes away: the two in
    flight are pending (none running), the message says how to resume, and the local executor
    resumes the same database. Through the CLI: one line, exit 2."""
    runs = study(seeds=[0, 1, 2])
    with pytest.raises(ClusterLostError, match=r"went away .*; 2 runs in flight back to pending: "
                       r"rerun the same command .* or resume here with --executor local"):
        run_sweep(runs, out=tmp_path, executor=Vanishing(at=2), progress=False)
    with ResultsStore(tmp_path / "results.sqlite", readonly=True) as store:
        assert sorted(store.runs().status) == ["complete", "pending", "pending"]
        assert store.sessions().runs_executed.tolist() == [1]  # the session's record counts it
    again = run_sweep(runs, out=tmp_path, progress=False)
    assert (again.skipped, again.complete) == (1, 2)


class Growing(SequentialExecutor):
    """Capacity 1 until the first result comes back, then 3 (a node joined)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0
        self.in_flight: list[int] = []

    @property
    def capacity(self) -> int:
        return 1 if self.waits == 0 else 3

    def wait(self) -> list[RunResult]:
        self.in_flight.append(len(self._queue))
        self.waits += 1
        return super().wait()


def test_capacity_is_read_again_before_each_submit(tmp_path: Path) -> None:
    ex = Growing()
    run_sweep(study(seeds=[0, 1, 2, 3]), out=tmp_path, executor=ex, progress=False)
    assert ex.in_flight == [1, 3, 2, 1]


def test_each_run_records_the_process_that_ran_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (the sequential executor): this process's pid and no Ray node; `runs` shows
    both columns."""
    summary = run_sweep(study(seeds=[0]), out=tmp_path, progress=False)
    with ResultsStore(summary.db, readonly=True) as store:
        row = store.runs().iloc[0]
    assert row.worker_pid == os.getpid() and row.node is None
    capsys.readouterr()
    assert main(["runs", "--db", str(summary.db)]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[-3:] == ["node", "worker_pid", "error"]
    assert line.split()[-3:] == ["None", str(os.getpid()), "None"]


def test_a_database_from_before_the_node_columns_reads_and_gains_them(tmp_path: Path) -> None:
    summary = run_sweep(study(seeds=[0]), out=tmp_path, progress=False)
    with sqlite3.connect(summary.db) as con:
        for column in ("node", "worker_pid"):
            con.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    with ResultsStore(summary.db, readonly=True) as store:  # read as it is: NULL
        row = store.runs().iloc[0]
    assert row.status == "complete" and row.node is None and row.worker_pid is None
    with ResultsStore(summary.db) as store:  # a writer adds them
        store.mark_pending([row.run_id])  # complete: left alone
        assert store.runs().iloc[0].status == "complete"
    with sqlite3.connect(summary.db) as con:
        names = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    assert {"node", "worker_pid"} <= names


def test_the_local_executor_never_imports_ray(tmp_path: Path) -> None:
    """Ray stays optional: a local sweep (and `runs`) runs without importing it."""
    code = (
        "import sys\n"
        "from rankrobust.cli.main import main\n"
        "from rankrobust.experiments import run_sweep\n"
        "from test_sweep_faults import study\n"
        f"run_sweep(study(seeds=[0]), out={str(tmp_path)!r}, progress=False)\n"
        f"assert main(['runs', '--db', {str(tmp_path / 'results.sqlite')!r}]) == 0\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
