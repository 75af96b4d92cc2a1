"""Kill-safety: SIGKILL the sweep driver at random moments, rerun until done, check the database."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

STUDY = {
    "name": "kill",
    "dataset": "synthetic",
    "model": "mlp",
    "model_options": {"hidden": [8]},
    "train": {"epochs": 2, "batch_size": 32, "device": "cpu"},
    "evaluation": {"n": 16},
    "seeds": list(range(16)),
}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rankrobust", "sweep", str(config), "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(1234)
    kills = 0
    db = out / "results.sqlite"

    def complete() -> int:
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                return int(con.execute("SELECT COUNT(*) FROM runs WHERE status='complete'").fetchone()[0])
        except sqlite3.Error:
            return 0

    # Each attempt waits until the sweep has made progress (one more run complete), then kills
    # it after a random delay: mid-run, mid-write or between runs, however fast the machine is.
    for _ in range(4):
        before = complete()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        while proc.poll() is None and complete() <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    # ONE resume must finish the study: a stale lock or a half-written run left by the last kill
    # is exactly the bug this test exists for, and a retry would hide it.
    left = 16 - complete()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"\b{left} executed", done.stdout), done.stdout
    assert kills >= 3
    con = sqlite3.connect(out / "results.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = con.execute("SELECT run_id, status FROM runs").fetchall()
    assert len(runs) == 16 and {s for _, s in runs} == {"complete"}
    per_run = con.execute("SELECT run_id, COUNT(*), COUNT(DISTINCT epoch) FROM epoch_metrics "
                          "GROUP BY run_id").fetchall()
    assert sorted(r for r, _, _ in per_run) == sorted(r for r, _ in runs)
    assert all(n == d == 2 for _, n, d in per_run)  # every run recorded exactly once
    structure = con.execute("SELECT run_id, COUNT(*) FROM structure GROUP BY run_id").fetchall()
    assert all(n == 3 * 2 for _, n in structure) and len(structure) == 16
    assert "0 executed" in subprocess.run(cmd, capture_output=True, text=True, env=env).stdout
