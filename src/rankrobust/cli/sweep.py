"""``rankrobust sweep``: run every unfinished run of a study file and store the results."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankrobust.cli.common import add_progress_argument, output_dir
from rankrobust.work_args import add_max_hours_argument, add_max_runs_argument

if TYPE_CHECKING:  # the CLI imports torch only when a command runs
    from rankrobust.experiments.study_config import StudyConfig


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep", help="run a study grid (resumable) into a results database",
        description="Expand the study CONFIG (YAML) into runs, skip those already complete in "
        "the results database, run the others and store every result. Exit code 1 when any "
        "run of the study is recorded as failed; 2 on bad input, or when the Ray cluster goes "
        "away (the runs in flight are pending again: rerun to resume).",
    )
    p.add_argument("config", metavar="CONFIG", help="study file (YAML), e.g. examples/smoke.yaml")
    p.add_argument("--out", default=".", help="output folder (results.sqlite, checkpoints/); default .")
    p.add_argument("--db", default=None, help="results database (default OUT/results.sqlite)")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=1,
                   help="local: worker processes (1 = in this process); ray: local Ray CPUs")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join, HEAD_IP:PORT as given to `ray start --address` "
                   "(ray executor; default: start a local Ray)")
    p.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    add_progress_argument(p)
    add_max_runs_argument(p)
    add_max_hours_argument(p)
    p.add_argument("--dry-run", action="store_true",
                   help="validate and expand the study, print how many runs it has (and how many "
                   "an existing database already holds) and its estimated work; write nothing")
    p.set_defaults(run=run)


def dry_run(args: argparse.Namespace) -> int:
    """``sweep --dry-run``: :func:`preview` of the study file, nothing written."""
    from rankrobust.experiments.study_file import load_study

    db = Path(args.db) if args.db is not None else None
    return preview(load_study(args.config), Path(args.out), db, args)


def preview(study: StudyConfig, out: Path, db: Path | None, args: argparse.Namespace) -> int:
    """Validate, expand and count the runs of ``study`` (capped by ``args.max_runs``), check
    its estimated work against ``args.max_hours``; read an existing database without touching
    it (no ``-wal``/``-shm``); write nothing."""
    from rankrobust.experiments.estimate import study_work
    from rankrobust.experiments.grid import expand, run_id
    from rankrobust.experiments.store import ResultsStore
    from rankrobust.experiments.sweep import DB_NAME, check_models, data_problem
    from rankrobust.work import check_work

    configs = expand(study, args.max_runs)
    check_models(configs)
    work = study_work(study.name, configs)
    workers = getattr(args, "workers", None) or 1
    check_work(work, args.max_hours, workers=workers)
    db = db if db is not None else out / DB_NAME
    done, status = "", {}
    if db.exists():
        with ResultsStore(db, touch_nothing=True) as store:
            status = store.status_of([run_id(c) for c in configs])
        complete = sum(1 for s in status.values() if s == "complete")
        failed = sum(1 for s in status.values() if s == "failed")
        done = f" ({complete} complete, {failed} failed in {db})"
    print(f"study {study.name}: {len(configs)} runs{done}; dry run, nothing written")
    print(f"estimated work: ≈ {work.passes:.3g} forward+backward passes, ≈ {work.hours:.3g} h "
          "at this machine's assumed rate (bound: --max-hours)")
    # a study may be counted here and run where its data is: a note, not a refusal
    problem = data_problem(configs)
    print("data: every dataset loads here" if problem is None else
          f"data: not here ({problem}); a sweep here would stop before writing anything")
    return 0


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.experiments.study_file import load_study
    from rankrobust.experiments.sweep import run_sweep

    if args.dry_run:
        return dry_run(args)
    from rankrobust.experiments.sweep import check_study

    study = load_study(args.config)  # a bad study file creates no folder, nor one too big
    check_study(study, args.max_runs, args.max_hours, args.workers)
    output_dir(args.out, "--out")
    if args.db is not None:
        output_dir(Path(args.db).parent, "--db")
    summary = run_sweep(
        study, out=args.out, db=args.db, executor=args.executor, workers=args.workers,
        address=args.address, retry_failed=args.retry_failed,
        progress=False if args.no_progress else None,
        command=getattr(args, "command_line", None), max_runs=args.max_runs,
        max_hours=args.max_hours,
    )
    print(summary.line())
    return summary.exit_code
