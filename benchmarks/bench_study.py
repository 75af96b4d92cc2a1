"""Training throughput of a study's runs: stacked groups (train_stacked) vs one run at a time (fit).

The runs are the small preset's (mnist5k; mlp 150-100 and lenet5) natural, l1, nuclear,
l1+nuclear (3 λ each) and pgd-adv runs × 3 seeds: 33 per model, grouped by
:func:`rankrobust.training.stacked.stack_groups`. Each group is trained both ways, interleaved
(the order alternates from group to group), in this process; only training is timed (``fit``'s
model build, training, per-epoch test evaluation, structure tracking and validation), with the
data splits loaded once and cached for both. Prints per group and per model, then the final test
accuracy difference between the two (equivalence on real data), and as its last line one JSON
object of speedups (solo seconds / stacked seconds).

    .venv/bin/python benchmarks/bench_study.py [--epochs 2] [--threads 0] [--models mlp lenet5]
        [--max-group 10]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections import defaultdict
from typing import Any

import torch

import rankrobust.training.fit as fit_module
import rankrobust.training.stacked as stacked_module
from rankrobust.data import load_dataset
from rankrobust.experiments.config import RunConfig, load_study
from rankrobust.experiments.grid import expand
from rankrobust.experiments.study import PRESET_DIR
from rankrobust.training.fit import FitResult, fit
from rankrobust.training.stacked import DEFAULT_MAX_GROUP, stack_groups, train_stacked

METHODS = ("natural", "l1", "nuclear", "l1+nuclear", "pgd-adv")


def study_runs(epochs: int, models: list[str]) -> list[RunConfig]:
    """The preset's runs of METHODS and ``models``, trained for ``epochs``."""
    runs = [c for c in expand(load_study(PRESET_DIR / "small.yaml"))
            if c.method in METHODS and c.model in models]
    for c in runs:
        c.train = type(c.train)(**{**c.train.__dict__, "epochs": epochs})
    return runs


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (preset: 8)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    parser.add_argument("--max-group", type=int, default=DEFAULT_MAX_GROUP, help="runs per stack")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cached = functools.lru_cache(maxsize=None)(load_dataset)
    fit_module.load_dataset = cached  # type: ignore[assignment]  # both paths: data loaded once
    stacked_module.load_dataset = cached  # type: ignore[assignment]
    runs = study_runs(args.epochs, args.models)
    groups = stack_groups(runs, args.max_group)
    print(f"{len(runs)} runs in {len(groups)} groups, {args.epochs} epochs, "
          f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()}")
    time_solo([runs[0]])  # warm-up: data cache, first-call costs of both paths
    time_stacked([runs[g[0]] for g in groups[:1]] * 2 if len(groups[0]) == 1 else
                 [runs[i] for i in groups[0][:2]])
    solo_s: dict[str, float] = defaultdict(float)
    stack_s: dict[str, float] = defaultdict(float)
    acc_diff = 0.0
    for n, group in enumerate(groups):
        members = [runs[i] for i in group]
        if n % 2:
            t_stack, stacked = time_stacked(members)
            t_solo, solo = time_solo(members)
        else:
            t_solo, solo = time_solo(members)
            t_stack, stacked = time_stacked(members)
        model = members[0].model
        solo_s[model] += t_solo
        stack_s[model] += t_stack
        for a, b in zip(stacked, solo, strict=True):
            acc_diff = max(acc_diff, abs(a.result.final["test_acc"] - b.result.final["test_acc"]))
        print(f"  {model:7s} {members[0].method:10s} seeds {sorted({m.seed for m in members})} "
              f"K={len(members):2d}: solo {t_solo:6.1f} s  stacked {t_stack:6.1f} s  "
              f"×{t_solo / t_stack:.2f}", flush=True)
    ratios = {f"train_speedup_{m}": round(solo_s[m] / stack_s[m], 2) for m in solo_s}
    ratios["train_speedup_all"] = round(sum(solo_s.values()) / sum(stack_s.values()), 2)
    for m in solo_s:
        print(f"{m:7s}: solo {solo_s[m]:6.1f} s  stacked {stack_s[m]:6.1f} s  "
              f"×{solo_s[m] / stack_s[m]:.2f}")
    print(f"max |final test_acc stacked − solo| over {len(runs)} runs: {acc_diff:.2e}")
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
