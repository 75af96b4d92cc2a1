"""``rankrobust report DB --out DIR``: rebuild the study report from a results database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rankrobust.cli.common import output_dir
from rankrobust.errors import DataError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="write report.html and report.md (claims, figures) from a results database",
        description="Read the results database DB (no training) and write DIR/report.html, "
        "DIR/report.md, DIR/figures/*.png and DIR/claims.csv.",
    )
    p.add_argument("db", metavar="DB", help="results database, e.g. runs/demo/results.sqlite")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.experiments.store import inspect_database
    from rankrobust.report.build import build_report

    if not Path(args.db).exists():
        raise DataError(f"no results database at {args.db}")
    inspect_database(args.db, readonly=True)  # a foreign or empty file is refused, untouched
    print(f"report: {build_report(args.db, output_dir(args.out, '--out'))}")
    return 0
