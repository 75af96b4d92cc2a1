"""``rankrobust sweep --executor ray`` on a real multi-node Ray cluster on this machine, with
faults: a worker node's raylet killed, a node joining mid-sweep, the cluster stopped, the head's
GCS killed, a head that wants an authentication token (see :mod:`ray_cluster` for the cluster
and the gate that holds runs on their node until a test lets them go).

The driver is the real CLI in a subprocess; runs are tiny (synthetic data). Each test starts
its own cluster (one or two nodes of 1 CPU) and kills every process of it at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rankrobust.experiments import ResultsStore

pytest.importorskip("ray")
if not sys.platform.startswith("linux"):
    pytest.skip("the cluster harness reads /proc", allow_module_level=True)

from ray_cluster import Cluster, wait_for  # noqa: E402 - after the skips

pytestmark = pytest.mark.slow
TOKEN = "5f1c0ffee0ddba11c0ffee0ddba11000"  # a head's RAY_AUTH_TOKEN (Ray wants ≥ 32 characters)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def token_cluster() -> Iterator[Cluster]:
    made = Cluster({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN})
    try:
        yield made
    finally:
        made.close()


def study_file(folder: Path, name: str, broken: bool = False, seeds: int = 2) -> Path:
    """Tiny runs of ``seeds`` seeds; with ``broken`` as many more that diverge (they
    raise)."""
    variants = [{"name": "ok"}]
    if broken:
        variants.append({"name": "broken", "train": {"epochs": 2, "lr": 1e30}})  # diverges
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu"}, "evaluation": {"n": 16},
        "seeds": list(range(seeds)), "variants": variants,
    }))
    return path


def sweep(cluster: Cluster, study: Path, out: Path, **env: str) -> subprocess.Popen[bytes]:
    """``rankrobust sweep STUDY --out OUT --executor ray --address …`` as a user would type it
    (its environment without the test cluster's variables, plus ``env``)."""
    clean = {k: v for k, v in cluster.env.items()
             if k not in ("RR_TEST_GATE", "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR",
                          "RAY_AUTH_TOKEN")}
    clean.update({"RAY_AUTH_MODE": "disabled", "HOME": str(cluster.root), **env})
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "rankrobust", "sweep", str(study), "--out", str(out),
         "--executor", "ray", "--address", cluster.address, "--no-progress"],
        stdout=open(out.parent / f"{out.name}.stdout", "wb"),  # noqa: SIM115 - the child owns it
        stderr=open(out.parent / f"{out.name}.stderr", "wb"), env=clean)  # noqa: SIM115


def finish(proc: subprocess.Popen[bytes], out: Path, seconds: float) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a :func:`sweep`, which must end within ``seconds``."""
    try:
        code = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"the sweep did not end within {seconds:g} s") from None
    read = lambda ext: (out.parent / f"{out.name}.{ext}").read_text(errors="replace")  # noqa: E731
    return code, read("stdout"), read("stderr")


def status(out: Path) -> list[str]:
    """The runs' statuses in the database a sweep is writing (read-only)."""
    with ResultsStore(out / "results.sqlite", readonly=True) as store:
        return list(store.runs().status)


def runs(out: Path) -> dict[str, dict[str, object]]:
    """run id → its row, as ``rankrobust runs --format json`` prints it (full node ids)."""
    done = subprocess.run([sys.executable, "-m", "rankrobust", "runs", "--db",
                           str(out / "results.sqlite"), "--format", "json", "--all-columns"],
                          capture_output=True, check=True, timeout=120)
    return {row["run_id"]: row for row in json.loads(done.stdout)}


@pytest.mark.timeout(600)
def test_a_run_lost_with_its_node_runs_again_on_a_survivor(cluster: Cluster, tmp_path: Path) -> None:
    """kill -9 of a worker node's raylet while a run is on it: that run runs again on the head
    (attempt 2) and completes; runs that raise fail once, without retries; one line names the
    lost node; none of Ray's raylet log dump reaches the user."""
    head = cluster.start(head=True)
    node = cluster.start()
    out = tmp_path / "out"
    proc = sweep(cluster, study_file(tmp_path, "lost", broken=True), out)
    wait_for("a run on the worker node", lambda: any(n == node.node_id for _, n, _ in cluster.started()), 300)
    lost = next(rid for rid, n, _ in cluster.started() if n == node.node_id)
    os.kill(node.pid_of("raylet"), signal.SIGKILL)
    cluster.open_gate()
    code, stdout, stderr = finish(proc, out, 300)

    table = runs(out)
    assert code == 1, stderr  # the two broken runs failed
    assert table[lost]["attempts"] == 2 and table[lost]["node"] == head.node_id
    on_head = [(rid, pid) for rid, n, pid in cluster.started() if n == head.node_id]
    assert sorted(rid for rid, _ in on_head) == sorted(table)  # each run ran once on the head
    for rid, row in table.items():
        broken = row["variant"] == "broken"
        assert row["status"] == ("failed" if broken else "complete"), row
        assert row["attempts"] == (2 if rid == lost else 1), row  # a run that raised: no retry
        assert row["node"] == head.node_id and row["worker_pid"] == dict(on_head)[rid]
        if broken:
            assert str(row["error"]).startswith("TrainingDivergedError"), row
    lines = stderr.splitlines()
    died = [line for line in lines if "died" in line]
    assert len(died) == 1 and re.fullmatch(
        rf"ray: node {node.node_id[:12]} \(\S+\) died; the runs it held go to the nodes still alive",
        died[0]), stderr
    assert sorted(line.split(":")[0] for line in lines if line not in died) == sorted(
        f"run {rid} failed" for rid, row in table.items() if row["status"] == "failed"), stderr
    assert stdout.count("\n") == 1 and stdout.startswith("study lost: 4 runs"), stdout


@pytest.mark.timeout(600)
def test_a_joining_node_gets_runs_and_a_stopped_cluster_leaves_them_pending(
        cluster: Cluster, tmp_path: Path) -> None:
    """A node started after the sweep gets a run while the head's only CPU is busy, and the
    sweep hands Ray more tasks as the cluster grows (three runs: two handed out per CPU, the
    third once the second CPU is seen); each run's node and worker pid are stored (shown by
    ``rankrobust runs``). Then, with a second sweep in flight, the cluster is stopped as
    ``ray stop`` does: its runs are pending again, and one line says so and how to resume."""
    head = cluster.start(head=True)
    out = tmp_path / "grow"
    proc = sweep(cluster, study_file(tmp_path, "grow", seeds=3), out)
    wait_for("a run on the head", lambda: len(cluster.started()) == 1, 300)
    wait_for("2 tasks per CPU handed to Ray", lambda: sorted(status(out)) == [
        "pending", "running", "running"], 60)  # and no more: nothing ends while the gate is shut
    assert sorted(status(out)) == ["pending", "running", "running"]
    joined = cluster.start()  # the head's CPU is held by the gated run
    wait_for("a run on the node that joined", lambda: any(
        n == joined.node_id for _, n, _ in cluster.started()), 120)
    wait_for("the third run handed to Ray", lambda: status(out) == ["running"] * 3, 60)
    cluster.open_gate()
    code, stdout, stderr = finish(proc, out, 300)
    assert (code, stderr) == (0, "")
    table = runs(out)
    assert {(rid, row["node"], row["worker_pid"]) for rid, row in table.items()} == set(
        cluster.started())
    assert {row["node"] for row in table.values()} == {head.node_id, joined.node_id}
    shown = subprocess.run([sys.executable, "-m", "rankrobust", "runs", "--db",
                            str(out / "results.sqlite")], capture_output=True, text=True, check=True)
    for _, node_id, pid in cluster.started():
        assert any(node_id[:12] in line and str(pid) in line for line in shown.stdout.splitlines())

    cluster.close_gate()
    out = tmp_path / "stop"
    proc = sweep(cluster, study_file(tmp_path, "stop"), out)
    wait_for("both runs started", lambda: len(cluster.started()) == 2, 300)
    cluster.stop()
    code, stdout, stderr = finish(proc, out, 120)
    assert code == 2 and stdout == "", stderr
    assert stderr.count("\n") == 1 and stderr.startswith("rankrobust: error: the Ray cluster ("), stderr
    assert "went away" in stderr and "2 runs in flight back to pending" in stderr, stderr
    assert "--executor local" in stderr, stderr
    assert {row["status"] for row in runs(out).values()} == {"pending"}


@pytest.mark.timeout(600)
def test_token_authentication_and_a_killed_head(token_cluster: Cluster, tmp_path: Path) -> None:
    """A head with token authentication: a driver without the token, or with a wrong one, is
    refused in one line naming Ray's setting, before anything is written. With the token it
    runs; then the head's GCS is killed: one line within seconds, no run left running, and
    ``--executor local`` resumes the same database."""
    cluster = token_cluster
    cluster.start(head=True)
    study = study_file(tmp_path, "auth")
    for name, env, what in (("none", {}, "requires token authentication"),
                            ("wrong", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "f" * 32},
                             "refused this driver's token")):
        out = tmp_path / name
        t0 = time.monotonic()
        code, stdout, stderr = finish(sweep(cluster, study, out, **env), out, 120)
        assert code == 2 and stdout == "" and stderr.count("\n") == 1, stderr
        assert what in stderr and "RAY_AUTH_MODE=token" in stderr and "RAY_AUTH_TOKEN" in stderr
        assert list(out.iterdir()) == []  # no results.sqlite, no lock
        assert time.monotonic() - t0 < 60

    out = tmp_path / "head"
    proc = sweep(cluster, study, out, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    wait_for("a run on the head", lambda: len(cluster.started()) == 1, 300)
    head = cluster.nodes[0]
    os.kill(head.pid_of("gcs_server"), signal.SIGKILL)
    killed = time.monotonic()
    code, stdout, stderr = finish(proc, out, 55)  # Ray's own reaction comes after 60 s
    assert time.monotonic() - killed < 30
    assert code == 2 and stdout == "" and stderr.count("\n") == 1, stderr
    assert "went away" in stderr and "does not answer" in stderr, stderr
    with ResultsStore(out / "results.sqlite", readonly=True) as store:
        assert set(store.runs().status) == {"pending"}
    cluster.close()
    resumed = subprocess.run([sys.executable, "-m", "rankrobust", "sweep", str(study), "--out",
                              str(out), "--executor", "local", "--no-progress"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert {row["status"] for row in runs(out).values()} == {"complete"}
