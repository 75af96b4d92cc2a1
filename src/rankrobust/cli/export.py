"""``rankrobust export DB --format parquet|csv --out DIR`` and ``rankrobust export DB --mlflow URI``:
a results database as one file per table, or as MLflow runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rankrobust.cli.common import UsageError
from rankrobust.errors import DataError

FORMATS = ("parquet", "csv")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="write a results database as Parquet/CSV tables or as MLflow runs",
        description="Read the results database DB (read-only) and write one file per table into "
        "a new or empty folder (--out: runs with the flattened config, epoch_metrics, structure, "
        "robustness, scalars, spectra, interventions, sessions, claims, ...), and/or one MLflow "
        "run per study run into the study's experiment (--mlflow; pip install "
        "'rankrobust[mlflow]'). Re-exporting to MLflow updates runs instead of duplicating them.",
    )
    p.add_argument("db", metavar="DB", help="results database, e.g. runs/demo/results.sqlite")
    p.add_argument("--out", default=None, metavar="DIR", help="new or empty folder for the tables")
    p.add_argument("--format", default="parquet",
                   help=f"table file format with --out: {' or '.join(FORMATS)} (default parquet)")
    p.add_argument("--mlflow", default=None, metavar="URI",
                   help="MLflow tracking URI, e.g. http://127.0.0.1:5000")
    p.add_argument("--experiment", default=None, metavar="NAME",
                   help="with --mlflow: put every run into this experiment (default: the study's name)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rankrobust.cli.common import check_choice

    if args.out is None and args.mlflow is None:
        raise UsageError("export: give --out DIR (tables) and/or --mlflow URI")
    if args.experiment is not None and args.mlflow is None:
        raise UsageError("export: --experiment applies with --mlflow only")
    check_choice("--format", args.format, FORMATS)
    if not Path(args.db).exists():
        raise DataError(f"no results database at {args.db}")
    # heavy: imports torch and pandas
    from rankrobust.experiments.store import inspect_database
    from rankrobust.export.tables import check_out_dir, require_format, study_tables, write_tables

    inspect_database(args.db, readonly=True)  # a foreign or empty file is refused, untouched
    if args.out is not None:  # every check before any work: nothing is written on bad input
        require_format(args.format)
        check_out_dir(args.out)
    if args.mlflow is not None:
        from rankrobust.export.mlflow import check_reachable, require_mlflow

        require_mlflow()
        check_reachable(args.mlflow)
    if args.out is not None:
        paths = write_tables(study_tables(args.db), args.out, args.format)
        print(f"export: {len(paths)} tables in {args.out} ({', '.join(p.name for p in paths)})")
    if args.mlflow is not None:
        from rankrobust.export.mlflow import export_mlflow

        done = export_mlflow(args.db, args.mlflow, args.experiment, progress=sys.stderr.isatty())
        print(f"export: MLflow {args.mlflow}, experiment(s) {', '.join(done.experiments)}: "
              f"{done.created} runs created, {done.replaced} replaced, {done.unchanged} unchanged")
    return 0
