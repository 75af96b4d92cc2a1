"""``rankrobust reproduce``: run the paper's study as a built-in sweep and build its report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rankrobust.cli.common import add_progress_argument, check_choice, output_dir
from rankrobust.cli.help import DATASET_NAMES, registry_help
from rankrobust.work_args import add_max_hours_argument, add_max_runs_argument


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "reproduce", help="run the paper's study (built-in sweep) and write its report",
        description="An FC and a CNN model (the preset's, or the dataset's default pair: "
        "`rankrobust datasets`) × training methods (natural, adversarial, structure-promoting "
        "with λ paths, controls; the preset file lists them) × seeds, with structure tracked each "
        "epoch and robustness curves (FGSM/FGM, PGD, ε-grid AutoAttack) plus DeepFool ρ_adv; then "
        "the report (claims C1–C6 with 95 % CIs) in OUT/report/. Resumable: finished runs are "
        "skipped.",
    )
    p.add_argument("--scale", default="small",
                   help="smoke ≈ 1 min (synthetic data); small = MNIST-5k, 3 seeds, ≤ 15 min on "
                   "2 cores; paper = the paper's ε on Fashion-MNIST (60k), 3 seeds, ≤ 2 h on 2 "
                   "cores; paper-v2 = capacity-matched FC/CNN, converged training with "
                   "validation-selected epochs, λ paths, weight-decay and spectral-norm controls, "
                   "5 seeds for the key comparisons, ≈ 8 h on 2 cores; full = GPU or Ray "
                   "cluster (default small)")
    p.add_argument("--dataset", default=None,
                   help=registry_help(DATASET_NAMES, "{names} (default: synthetic for smoke, "
                   "mnist5k for small, fashion-mnist for paper and paper-v2, mnist for full)"))
    p.add_argument("--seeds", type=int, default=None, help="number of seeds, for every variant (default: the scale's)")
    p.add_argument("--out", default=None, help="output folder (default runs/reproduce-SCALE)")
    p.add_argument("--data-dir", default=None, help="folder with dataset files (mnist, cifar10, ...)")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: 2 where there are ≥ 2 CPUs)")
    p.add_argument("--address", default=None, help="Ray cluster address to join (ray executor)")
    add_progress_argument(p)
    add_max_runs_argument(p)
    add_max_hours_argument(p)
    p.add_argument("--dry-run", action="store_true",
                   help="expand the study (ε scaled to the dataset, its overrides applied), print "
                   "how many runs it has (and how many OUT's database already holds) and its settings as a study file; "
                   "write nothing")
    p.set_defaults(run=run)


def default_out(args: argparse.Namespace) -> str:
    """``--out``, or ``runs/reproduce-SCALE``."""
    return str(args.out or f"runs/reproduce-{args.scale}")


def dry_run(args: argparse.Namespace) -> int:
    """The study ``reproduce`` would run, previewed (:func:`rankrobust.cli.sweep.preview`) and
    printed as a study file (usable with ``rankrobust sweep``)."""
    import yaml

    from rankrobust.cli.sweep import preview
    from rankrobust.experiments.study import reproduce_study
    from rankrobust.experiments.study_config import study_to_dict

    study = reproduce_study(args.scale, args.dataset, args.seeds, args.data_dir, args.max_runs)
    code = preview(study, Path(default_out(args)), None, args)
    print("# the study, as a file for `rankrobust sweep`:")
    print(yaml.safe_dump(study_to_dict(study), sort_keys=False, allow_unicode=True,
                         default_flow_style=None), end="")
    return code


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.experiments.study import DATASETS, SCALES, reproduce_study, run_reproduce

    check_choice("--scale", args.scale, SCALES)
    if args.dataset is not None:
        check_choice("--dataset", args.dataset, DATASETS)
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    args.workers = workers
    if args.dry_run:  # before the report (matplotlib) is imported: a dry run writes nothing
        return dry_run(args)
    from rankrobust.experiments.sweep import check_study
    from rankrobust.report.build import build_report

    study = reproduce_study(args.scale, args.dataset, args.seeds, args.data_dir, args.max_runs)
    check_study(study, args.max_runs, args.max_hours, workers)  # before any folder is made
    out = output_dir(default_out(args), "--out")
    summary = run_reproduce(
        args.scale, args.dataset, args.seeds, out, executor=args.executor, workers=workers,
        address=args.address, data_dir=args.data_dir, progress=False if args.no_progress else None,
        command=getattr(args, "command_line", None), max_runs=args.max_runs,
        max_hours=args.max_hours,
    )
    print(summary.line())
    if summary.stopped:  # a partial study: its report comes with the run that finishes it
        print("report: not built (stopped before the end of the study)")
        return summary.exit_code
    report = build_report(summary.db, out / "report")
    print(f"report: {report}")
    return summary.exit_code
