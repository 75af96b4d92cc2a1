"""A/B benchmarks across source trees: run a snippet in a fresh process on one tree's ``src/``.

Used by ``bench_train.py`` and ``bench_run.py``: each measurement is a fresh interpreter whose
``PYTHONPATH`` is one tree, with 1 torch/OpenMP thread, so that the two trees share nothing but
the machine; the snippet prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_in_tree(tree: str, code: str, args: list[str], timeout: float) -> dict[str, Any]:
    """The last stdout line of ``python -c code *args`` on ``tree``, parsed as JSON; a failure
    ends the benchmark with the snippet's error output."""
    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def load() -> str:
    """The load average (1, 5, 15 min), as printed beside each measurement."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
