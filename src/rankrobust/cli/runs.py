"""``rankrobust runs``: list the runs of a results database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rankrobust.cli.common import emit_frame
from rankrobust.errors import ConfigError

SHOWN = ["run_id", "status", "study", "label", "method", "seed", "clean_accuracy",
         "train_seconds", "eval_seconds", "attempts", "collapsed", "warnings", "node", "worker_pid",
         "error"]
NODE_CHARS = 12  # a Ray node id (56 hex digits) in the table: its first digits, as `ray status`
STATUSES = ["pending", "running", "complete", "failed"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "runs", help="list the runs of a results database",
        description="List runs (id, status, label, method, seed, accuracy, timings, the epoch "
        "where training collapsed, the number of warnings (--all-columns: their text), the Ray node "
        "and worker pid that ran each, error).",
    )
    p.add_argument("--db", default="results.sqlite", help="results database (default ./results.sqlite)")
    p.add_argument("--status", nargs="+", choices=STATUSES, default=None, help="only these statuses")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--all-columns", action="store_true", help="every column (config, versions, ...)")
    p.add_argument("--summary", action="store_true",
                   help="instead of the runs: how many per status, the share of the estimated "
                   "work done, the sweep sessions' wall time and an ETA at that pace")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rankrobust.experiments.store import ResultsStore  # heavy: imports torch

    if not Path(args.db).exists():
        raise ConfigError(f"no results database at {args.db} (run `rankrobust sweep` first or give --db)")
    if args.summary:
        if args.status is not None or args.all_columns or args.format != "table":
            raise ConfigError("--summary takes no --status, --all-columns or --format")
        from rankrobust.experiments.status import study_status

        with ResultsStore(args.db, readonly=True) as store:
            status = study_status(store.runs(), store.sessions())
        print("\n".join(status.lines()))
        return 0
    with ResultsStore(args.db, readonly=True) as store:  # never writes, works on read-only files
        frame = store.runs(status=args.status)
        scalars = store.scalars(list(frame["run_id"]))
    epochs = scalars[scalars["name"] == "collapse_epoch"].set_index("run_id")["value"]
    frame.insert(len(frame.columns) - 1, "collapsed", frame["run_id"].map(epochs).astype("Int64"))
    if not args.all_columns:
        frame = frame[SHOWN].assign(warnings=frame["warnings"].map(_count))
    if args.format == "table" and frame.empty:
        print("no runs")
        return 0
    if args.format == "table":  # full ids in json and csv
        frame = frame.assign(node=[v[:NODE_CHARS] if isinstance(v, str) else v for v in frame["node"]])
        frame["worker_pid"] = frame["worker_pid"].astype("Int64")
    emit_frame(frame, args.format)
    return 0


def _count(stored: Any) -> int:
    """How many warnings a run's stored ``warnings`` (a JSON list, or NULL) holds."""
    if not isinstance(stored, str):
        return 0
    try:
        items = json.loads(stored)
    except ValueError:
        return 1
    return len(items) if isinstance(items, list) else 1
