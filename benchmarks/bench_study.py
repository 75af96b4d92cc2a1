"""Wall time of a reproduce preset's whole sweep: stacked (``run_sweep(stack=True)``) vs one run
at a time, both with the same local worker pool.

The study is ``rankrobust reproduce --scale SCALE``'s (small: MNIST-5k, 3 seeds; paper:
Fashion-MNIST, first seed only), optionally shrunk for a quick look: ``--epochs`` replaces every
run's epoch count, ``--seeds`` the number of seeds, ``--models``/``--variants`` keep a subset,
``--eval-n`` the number of attacked test points. Each timing is the whole ``run_sweep`` (worker
start-up, training, evaluation, storing) into a fresh temporary database; with ``--repeats``
the two modes alternate (stacked first in even repeats, solo first in odd ones). The load
average (``os.getloadavg()``) is printed before and after each timing, then the largest
difference of a run's clean accuracy between the two modes, and, as the last line, one JSON
object of ratios (solo seconds / stacked seconds).

``--train-only`` makes instead the narrower measurement: each stack's training alone (groups
of more than one run), ``train_stacked`` vs ``fit`` per run, interleaved, in this process with
the data cached; ratios ``train_speedup_*`` (``--threads`` sets torch's threads for it).

    .venv/bin/python benchmarks/bench_study.py [--scale small|paper] [--epochs E] [--seeds N]
        [--workers 2] [--repeats 1] [--models mlp lenet5] [--variants natural pgd-adv ...]
        [--eval-n N] [--max-stack 10] [--data-dir DIR] [--keep DIR] [--train-only [--threads T]]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

import rankrobust.training.fit as fit_module
import rankrobust.training.stacked as stacked_module
from rankrobust.data import load_dataset
from rankrobust.experiments import ResultsStore, expand, run_sweep
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.study import reproduce_study
from rankrobust.experiments.study_config import StudyConfig
from rankrobust.training.fit import FitResult, fit
from rankrobust.training.stacked import DEFAULT_MAX_GROUP, stack_groups, train_stacked


def preset_study(args: argparse.Namespace) -> StudyConfig:
    """The preset's study with the command line's reductions applied."""
    seeds = args.seeds if args.seeds is not None else (1 if args.scale.startswith("paper") else None)
    study = reproduce_study(args.scale, seeds=seeds, data_dir=args.data_dir)
    base = copy.deepcopy(study.base)
    if args.epochs is not None:
        base.setdefault("train", {})["epochs"] = args.epochs
    if args.eval_n is not None:
        base.setdefault("evaluation", {})["n"] = args.eval_n
    if args.train_size is not None:
        base.setdefault("train", {})["train_size"] = args.train_size
    variants = study.variants
    if args.variants:
        variants = tuple(v for v in study.variants if v["name"] in args.variants)
        missing = set(args.variants) - {v["name"] for v in variants}
        if missing:
            raise SystemExit(f"unknown variants {sorted(missing)}; the preset has "
                             f"{[v['name'] for v in study.variants]}")
    grid = {**study.grid, "model": args.models} if args.models else study.grid
    return dataclasses.replace(study, base=base, variants=variants, grid=grid)


def time_sweep(study: StudyConfig, stack: bool, args: argparse.Namespace
               ) -> tuple[float, dict[str, float]]:
    """(seconds, run id → clean accuracy) of the whole sweep into a fresh database."""
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_study_") as scratch:
        # --keep DIR: the solo sweep's database stays in DIR (e.g. to build the demo's report)
        tmp = args.keep if args.keep and not stack else scratch
        start = time.perf_counter()
        summary = run_sweep(study, out=tmp, workers=args.workers, stack=stack,
                            max_stack=args.max_stack, progress=False)
        seconds = time.perf_counter() - start
        if summary.failed:
            raise SystemExit(f"{summary.failed} runs failed: {summary.line()}")
        with ResultsStore(Path(tmp) / "results.sqlite", readonly=True) as store:
            runs = store.runs()
        accuracy = dict(zip(runs.run_id, runs.clean_accuracy.astype(float), strict=True))
    after = os.getloadavg()
    print(f"  {'stacked' if stack else 'solo':7s} {seconds:8.1f} s   load average "
          f"{load[0]:.2f} → {after[0]:.2f} (1 min), {load[1]:.2f} → {after[1]:.2f} (5 min)",
          flush=True)
    return seconds, accuracy


def time_solo(group: list[RunConfig]) -> tuple[float, list[FitResult]]:
    start = time.perf_counter()
    out = [fit(c.dataset, c.model, c.train, dict(c.model_options), c.data_dir) for c in group]
    return time.perf_counter() - start, out


def time_stacked(group: list[RunConfig]) -> tuple[float, list[Any]]:
    c = group[0]
    start = time.perf_counter()
    out = train_stacked(c.dataset, c.model, [g.train for g in group], dict(c.model_options),
                        c.data_dir)
    return time.perf_counter() - start, out


def train_only(runs: list[RunConfig], max_stack: int) -> dict[str, float]:
    """Each group of more than one run trained both ways in this process, interleaved; ratios."""
    cached = functools.lru_cache(maxsize=None)(load_dataset)
    fit_module.load_dataset = cached  # type: ignore[assignment]  # both paths: data loaded once
    stacked_module.load_dataset = cached  # type: ignore[assignment]
    groups = [g for g in stack_groups(runs, max_stack) if len(g) > 1]
    print(f"training only: {sum(map(len, groups))} runs in {len(groups)} stacks, "
          f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()}")
    time_solo([runs[groups[0][0]]])  # warm-up: data cache, first-call costs of both paths
    time_stacked([runs[i] for i in groups[0][:2]])
    solo_s: dict[str, float] = defaultdict(float)
    stack_s: dict[str, float] = defaultdict(float)
    for n, group in enumerate(groups):
        members = [runs[i] for i in group]
        if n % 2:
            t_stack, _ = time_stacked(members)
            t_solo, _ = time_solo(members)
        else:
            t_solo, _ = time_solo(members)
            t_stack, _ = time_stacked(members)
        model = members[0].model
        solo_s[model] += t_solo
        stack_s[model] += t_stack
        print(f"  {model:7s} {members[0].method:10s} seeds {sorted({m.seed for m in members})} "
              f"K={len(members):2d}: solo {t_solo:6.1f} s  stacked {t_stack:6.1f} s  "
              f"×{t_solo / t_stack:.2f}", flush=True)
    ratios = {f"train_speedup_{m}": round(solo_s[m] / stack_s[m], 2) for m in solo_s}
    ratios["train_speedup_all"] = round(sum(solo_s.values()) / sum(stack_s.values()), 2)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["small", "paper", "paper-v2"], default="small")
    parser.add_argument("--train-size", type=int, default=None,
                        help="training images per run (train.train_size; default: the preset's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the preset's)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="number of seeds (default: the preset's; 1 for paper)")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes, both modes")
    parser.add_argument("--repeats", type=int, default=1, help="timings per mode, A/B interleaved")
    parser.add_argument("--models", nargs="+", default=None, help="subset of the preset's models")
    parser.add_argument("--variants", nargs="+", default=None, help="subset of the preset's variants")
    parser.add_argument("--eval-n", type=int, default=None, help="attacked test points per run")
    parser.add_argument("--max-stack", type=int, default=DEFAULT_MAX_GROUP, help="runs per stack")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset's files")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep the solo sweep's results.sqlite in DIR (must be new or empty)")
    parser.add_argument("--train-only", action="store_true",
                        help="instead, time each stack's training alone, in this process")
    parser.add_argument("--threads", type=int, default=0,
                        help="--train-only: torch threads (0: torch's default)")
    args = parser.parse_args()
    study = preset_study(args)
    runs = expand(study)
    if args.train_only:
        if args.threads:
            torch.set_num_threads(args.threads)
        ratios = train_only(runs, args.max_stack)
        print(f"load average after: {os.getloadavg()}")
        print(json.dumps(ratios))
        return
    groups = stack_groups(runs, args.max_stack)
    print(f"{study.name}: {len(runs)} runs, {len(groups)} tasks stacked "
          f"({sum(len(g) > 1 for g in groups)} stacks), {args.workers} workers, "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()}", flush=True)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    accuracy: dict[bool, dict[str, float]] = {}
    for repeat in range(args.repeats):
        for stack in ((True, False) if repeat % 2 == 0 else (False, True)):
            t, accuracy[stack] = time_sweep(study, stack, args)
            seconds[stack].append(t)
    diff = max(abs(accuracy[True][r] - accuracy[False][r]) for r in accuracy[False])
    print(f"solo {sum(seconds[False]):.1f} s, stacked {sum(seconds[True]):.1f} s over "
          f"{args.repeats} repeat(s); max |clean accuracy stacked − solo| over {len(runs)} runs: "
          f"{diff:.4f}")
    ratios: dict[str, Any] = {
        "study_speedup": round(sum(seconds[False]) / sum(seconds[True]), 2),
        "study_speedup_per_repeat": [round(a / b, 2) for a, b in
                                     zip(seconds[False], seconds[True], strict=True)],
    }
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
