"""Wall time of ``rankrobust sweep examples/smoke.yaml`` with each executor, fresh database each.

Baseline: the local sequential executor (in-process). Each timing is a whole CLI invocation
(interpreter start, imports, worker/Ray start-up, runs, database writes), best of ``--repeat``.
Prints one line per executor, then one JSON object of ratios (time / sequential time).

    .venv/bin/python benchmarks/bench_sweep_executors.py [--repeat 1] [--config examples/smoke.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "local-sequential": ["--executor", "local", "--workers", "1"],
    "local-workers-2": ["--executor", "local", "--workers", "2"],
    "ray-local-2cpu": ["--executor", "ray"],
}


def time_sweep(config: Path, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "rankrobust", "sweep", str(config), "--out", out,
               "--no-progress", *extra]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "smoke.yaml")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    times = {name: min(time_sweep(args.config, extra) for _ in range(args.repeat))
             for name, extra in VARIANTS.items()}
    base = times["local-sequential"]
    for name, seconds in times.items():
        print(f"{name:18s} {seconds:6.1f} s  ratio {seconds / base:.2f}")
    print(json.dumps({f"{name}_vs_sequential": round(s / base, 3) for name, s in times.items()}))


if __name__ == "__main__":
    main()
