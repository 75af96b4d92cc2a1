"""``rankrobust export DB --mlflow URI`` against a real MLflow tracking server.

The module starts ``mlflow server`` on a free loopback port (127.0.0.1) with a SQLite backend and
a local artifact folder, waits (bounded) for ``/health``, and stops the server's process group
after. Skipped, with the reason, where MLflow is not installed (``pip install
'rankrobust[mlflow]'``; ``make dev`` installs it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from rankrobust.cli.main import main
from rankrobust.experiments.config import run_config_from_dict
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult
from rankrobust.experiments.store import ResultsStore
from test_report_build import _config, _result

mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'rankrobust[mlflow]')")
pytestmark = pytest.mark.timeout(600)
START_SECONDS = 180  # a cold server (SQLite migrations) on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start in time"
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def _small_db(path: Path) -> Path:
    """Four complete runs (natural and pgd-adv × two seeds) and one failed run."""
    cases = [("mlp", method, 0, 0, seed) for method in ("natural", "pgd-adv") for seed in (0, 1)]
    with ResultsStore(path) as store:
        configs = [_config(*case) for case in cases]
        store.register(configs)
        for config, case in zip(configs, cases, strict=True):
            store.record(_result(config, *case))
        bad = run_config_from_dict({"dataset": "mnist5k", "model": "mlp",
                                    "train": {"epochs": 2, "seed": 9, "method": {"name": "natural"}},
                                    "study": "tiny"})
        store.register([bad])
        store.record(RunResult(run_id=run_id(bad), status="failed", error="RuntimeError: boom",
                               started_at="2026-01-01T00:00:00+00:00"))
    return path


def _runs(client: object, experiment: str) -> pd.DataFrame:
    exp = client.get_experiment_by_name(experiment)  # type: ignore[attr-defined]
    assert exp is not None, f"no experiment {experiment!r}"
    found = client.search_runs([exp.experiment_id], max_results=1000)  # type: ignore[attr-defined]
    return pd.DataFrame([{"mlflow_id": r.info.run_id, "rid": r.data.tags["rankrobust.run_id"],
                          "status": r.info.status, "params": r.data.params,
                          "metrics": r.data.metrics} for r in found])


def test_export_makes_one_run_per_study_run_and_is_idempotent(
        server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _small_db(tmp_path / "results.sqlite")
    with ResultsStore(db, readonly=True) as store:
        runs, epochs = store.runs(), store.epoch_metrics()
    client = mlflow.MlflowClient(tracking_uri=server)

    assert main(["export", str(db), "--mlflow", server]) == 0
    assert "5 runs created, 0 replaced, 0 unchanged" in capsys.readouterr().out
    studies = {s or "rankrobust" for s in runs["study"]}
    got = pd.concat([_runs(client, s) for s in studies], ignore_index=True)
    assert sorted(got["rid"]) == sorted(runs["run_id"])  # one MLflow run per study run
    by_rid = got.set_index("rid")
    for _, run in runs.iterrows():
        mine = by_rid.loc[run["run_id"]]
        assert mine["status"] == {"complete": "FINISHED", "failed": "FAILED"}[run["status"]]
        assert mine["params"]["train.seed"] == str(run["seed"])
        assert mine["params"]["train.method.name"] == run["method"]
        assert mine["params"]["dataset"] == run["dataset"]
    done = runs[runs["status"] == "complete"].iloc[0]
    mlflow_id = by_rid.loc[done["run_id"], "mlflow_id"]
    history = client.get_metric_history(mlflow_id, "test_acc")  # per epoch, the epoch as step
    want = epochs[epochs["run_id"] == done["run_id"]]
    assert sorted((m.step, m.value) for m in history) == sorted(
        zip(want["epoch"].astype(int), want["test_acc"], strict=True))
    assert by_rid.loc[done["run_id"], "metrics"]["clean_accuracy"] == pytest.approx(
        done["clean_accuracy"], rel=1e-12)
    artifacts = {a.path for a in client.list_artifacts(mlflow_id)}
    assert {"robustness.csv", "structure.csv", "spectra.csv", "claims.csv"} <= artifacts
    curves = pd.read_csv(client.download_artifacts(mlflow_id, "robustness.csv", str(tmp_path)))
    assert len(curves) > 0 and set(curves["run_id"]) == {done["run_id"]}

    # the same database again: nothing duplicated, nothing rewritten
    assert main(["export", str(db), "--mlflow", server]) == 0
    assert "0 runs created, 0 replaced, 5 unchanged" in capsys.readouterr().out
    again = pd.concat([_runs(client, s) for s in studies], ignore_index=True)
    assert sorted(again["mlflow_id"]) == sorted(got["mlflow_id"])

    # a run that changed (the failed one re-run and complete now) is replaced, once
    failed = runs[runs["status"] == "failed"].iloc[0]
    with ResultsStore(db) as store:
        store.record(RunResult(run_id=failed["run_id"], status="complete", clean_accuracy=0.5,
                               started_at="2026-01-02T00:00:00+00:00",
                               finished_at="2026-01-02T00:01:00+00:00"))
    assert main(["export", str(db), "--mlflow", server]) == 0
    assert "0 runs created, 1 replaced, 4 unchanged" in capsys.readouterr().out
    last = pd.concat([_runs(client, s) for s in studies], ignore_index=True).set_index("rid")
    assert len(last) == len(runs)
    assert last.loc[failed["run_id"], "status"] == "FINISHED"
    assert last.loc[failed["run_id"], "metrics"]["clean_accuracy"] == 0.5

    # a run left half-written by an interrupted export (no fingerprint tag: it is written last)
    # and a duplicate of another are both rewritten, leaving one run each
    half, twice = last.index[0], last.index[1]
    client.delete_tag(last.loc[half, "mlflow_id"], "rankrobust.fingerprint")
    experiment = client.get_run(last.loc[twice, "mlflow_id"]).info.experiment_id
    client.create_run(experiment, tags={"rankrobust.run_id": twice})
    assert main(["export", str(db), "--mlflow", server]) == 0
    assert "0 runs created, 2 replaced, 3 unchanged" in capsys.readouterr().out
    final = pd.concat([_runs(client, s) for s in studies], ignore_index=True)
    assert sorted(final["rid"]) == sorted(runs["run_id"])


def test_an_unreachable_server_is_one_line_exit_2_and_nothing_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _small_db(tmp_path / "results.sqlite")
    before = sorted(p.name for p in tmp_path.iterdir())
    started = time.monotonic()
    assert main(["export", str(db), "--mlflow", f"http://127.0.0.1:{_free_port()}"]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err.startswith("rankrobust: error: --mlflow http://127.0.0.1:") and err.count("\n") == 1
    assert "no MLflow tracking server answers" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
