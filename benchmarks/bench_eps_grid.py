"""The ε-grid AutoAttack (issue #18, wanted 1) vs one AutoAttack at ε_train on the same inputs.

Run: nice .venv/bin/python benchmarks/bench_eps_grid.py [--n 300] [--eps 0.1] [--repeats 3]
     [--model mlp] [--threads 1] [--epochs 3] [--ascending]

Two networks trained here on mnist5k (the `small` preset's MLP 150-100 by default): natural and
PGD-adversarially trained at ε_train (5 steps). On each, with the `small` preset's AutoAttack
settings (APGD 100 steps, 3 APGD-T targets, Square 500 queries), interleaved ``--repeats`` times:

- single: ``autoattack(model, x, y, [ε_train])``: APGD-CE → APGD-T → Square;
- grid: ``autoattack(model, x, y, [¼, ½, ¾, 1]·ε_train, grid=True)``: largest budget first,
  Square there only, each smaller budget only on the inputs broken at the next larger one;
- with ``--ascending``, also the ascending schedule of the same grid (``grid=False``: every
  budget attacks the inputs no smaller budget broke, Square at every budget), for reference.

The grid's row at ε_train must equal the single run's (checked). Labels are the true ones.
Prints a table, then as the last line one JSON object:
  eps_grid_vs_single           Σ grid / Σ single process CPU time over both networks (a study's
                               mix), median of the repeats per network; with one torch thread
                               CPU time is insensitive to other processes' load     goal ≤ 1.3
  eps_grid_vs_single_wall      the same in wall time (noisy on a shared machine)
  {model}_grid_vs_single       per network, wall time
  {model}_cpu_grid_vs_single   per network, CPU time
  {model}_ascending_vs_single  with --ascending
  load_avg_1min_start / _end   os.getloadavg() before and after
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch

from rankrobust.attacks import autoattack
from rankrobust.attacks.base import predict
from rankrobust.data import load_dataset
from rankrobust.methods.pgd_adv import PGDAdv
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit

SETTINGS = {"steps": 100, "n_targets": 3, "n_queries": 500, "seed": 0}  # the small preset's


def train(kind: str, args: argparse.Namespace) -> torch.nn.Module:
    method = PGDAdv(eps=args.eps, steps=5) if kind == "pgd" else None
    config = TrainConfig(epochs=args.epochs, progress=False, device="cpu", seed=0,
                         **({"method": method} if method else {}))
    options = {"hidden": [150, 100]} if args.model == "mlp" else {}
    start = time.perf_counter()
    fitted = fit("mnist5k", args.model, config, options)
    print(f"{kind}: trained in {time.perf_counter() - start:.0f} s, test accuracy "
          f"{fitted.result.final['test_acc']:.3f}", flush=True)
    return fitted.model.eval()


def timed(run: Callable[[], torch.Tensor]) -> tuple[float, float, torch.Tensor]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="mlp", choices=["mlp", "lenet5"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ascending", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    x, y = load_dataset("mnist5k", "test")
    x, y = x[: args.n], y[: args.n]
    grid = [q * args.eps for q in (0.25, 0.5, 0.75, 1.0)]
    out: dict[str, float] = {}
    totals = {"grid": 0.0, "single": 0.0, "grid_cpu": 0.0, "single_cpu": 0.0}
    for kind in ("natural", "pgd"):
        model = train(kind, args)
        runs: dict[str, Callable[[], torch.Tensor]] = {
            "single": lambda m=model: autoattack(m, x, y, [args.eps], keep_adv=False,
                                                 **SETTINGS).success,
            "grid": lambda m=model: autoattack(m, x, y, grid, grid=True, keep_adv=False,
                                               **SETTINGS).success,
        }
        if args.ascending:
            runs["ascending"] = lambda m=model: autoattack(m, x, y, grid, keep_adv=False,
                                                           **SETTINGS).success
        wall: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        results: dict[str, torch.Tensor] = {}
        for _ in range(args.repeats):  # interleaved: A B (C) A B (C) ...
            for name, run in runs.items():
                w, c, results[name] = timed(run)
                wall[name].append(w)
                cpu[name].append(c)
        assert torch.equal(results["grid"][-1], results["single"][0]), "grid's ε_train row differs"
        med = {name: statistics.median(v) for name, v in wall.items()}
        med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
        clean = float((predict(model, x) == y).float().mean())
        robust = (1 - results["grid"].float().mean(1)).tolist()
        print(f"{kind}: clean {clean:.3f}; robust accuracy at {[round(e, 4) for e in grid]}: "
              f"{[round(r, 3) for r in robust]}")
        for name in runs:
            print(f"{kind}: {name:>9} wall {med[name]:.2f} s (runs {[round(v, 2) for v in wall[name]]}), "
                  f"CPU {med_cpu[name]:.2f} s", flush=True)
        out[f"{kind}_grid_vs_single"] = round(med["grid"] / med["single"], 3)
        out[f"{kind}_cpu_grid_vs_single"] = round(med_cpu["grid"] / med_cpu["single"], 3)
        if args.ascending:
            out[f"{kind}_ascending_vs_single"] = round(med["ascending"] / med["single"], 3)
        out[f"{kind}_single_cpu_seconds"] = round(med_cpu["single"], 3)
        out[f"{kind}_grid_cpu_seconds"] = round(med_cpu["grid"], 3)
        for name in ("grid", "single"):
            totals[name] += med[name]
            totals[f"{name}_cpu"] += med_cpu[name]
    out["eps_grid_vs_single"] = round(totals["grid_cpu"] / totals["single_cpu"], 3)
    out["eps_grid_vs_single_wall"] = round(totals["grid"] / totals["single"], 3)
    out["load_avg_1min_start"] = round(load_start, 2)
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
