"""Solo training time of this checkout vs a base tree (issue #20: solo training ≤ 1.02× today's).

Usage: ``git archive BASE src | tar -x -C /tmp/base`` (or ``git worktree add /tmp/base BASE``),
then ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train.py /tmp/base/src [--repeats 3]
[--epochs 1] [--only CASE ...]``.

Each case is one ``fit`` (``rankrobust.training.fit``: data loading, model build, training,
final evaluation) on mnist5k with 1 torch thread, in a fresh process whose ``PYTHONPATH`` is
one tree; the two trees alternate (base first in even repeats, this checkout first in odd ones)
so that a change in machine load hits both. Timed inside the process, after the imports: the
whole ``fit`` call in wall time and in CPU time (``time.process_time``: with one thread, less
disturbed by other processes on a loaded machine than wall time) and ``result.seconds`` (the
training loop alone, wall). The load average is printed before and after. The last line is
one JSON object: per case and in total, the ratio of median times new / old (below 1: faster
now).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from trees import load, run_in_tree

NEW = str(Path(__file__).resolve().parents[1] / "src")
CASES = {
    "natural-lenet5": ("lenet5", {"name": "natural"}),
    "l1+nuclear-mlp": ("mlp", {"name": "l1+nuclear", "lambda_l1": 3e-4, "lambda_nuclear": 1.0}),
}
CODE = """
import json, sys, time, torch
torch.set_num_threads(1)
from rankrobust.configuration import from_dict
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit
cfg = from_dict(TrainConfig, {"epochs": int(sys.argv[3]), "device": "cpu", "progress": False,
                              "method": json.loads(sys.argv[2])}, "train")
t0, c0 = time.perf_counter(), time.process_time()
r = fit("mnist5k", sys.argv[1], cfg)
print(json.dumps({"fit": time.perf_counter() - t0, "fit_cpu": time.process_time() - c0,
                  "train": r.result.seconds, "acc": r.result.final["test_acc"]}))
"""


def time_one(tree: str, model: str, method: dict[str, object], epochs: int) -> dict[str, float]:
    return run_in_tree(tree, CODE, [model, json.dumps(method), str(epochs)], timeout=1800)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", nargs="?", default="/tmp/base/src", help="the base tree's src/")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--only", choices=list(CASES), nargs="+", default=list(CASES),
                        help="the cases to time (default: all)")
    args = parser.parse_args()
    print(f"load average before: {load()}", flush=True)
    ratios: dict[str, float] = {}
    totals = {"old": 0.0, "new": 0.0}
    cpu_totals = {"old": 0.0, "new": 0.0}
    for name in args.only:
        model, method = CASES[name]
        times: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for repeat in range(args.repeats):
            for which in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
                tree = args.base if which == "old" else NEW
                times[which].append(time_one(tree, model, method, args.epochs))
        med = {w: statistics.median(t["fit"] for t in times[w]) for w in times}
        cpu = {w: statistics.median(t["fit_cpu"] for t in times[w]) for w in times}
        train = {w: statistics.median(t["train"] for t in times[w]) for w in times}
        same_acc = {t["acc"] for t in times["old"]} == {t["acc"] for t in times["new"]}
        for w in totals:
            totals[w] += med[w]
            cpu_totals[w] += cpu[w]
        ratios[f"{name}_fit"] = round(med["new"] / med["old"], 3)
        ratios[f"{name}_fit_cpu"] = round(cpu["new"] / cpu["old"], 3)
        ratios[f"{name}_train"] = round(train["new"] / train["old"], 3)
        print(f"{name}: fit old {[round(t['fit'], 2) for t in times['old']]} s, new "
              f"{[round(t['fit'], 2) for t in times['new']]} s; CPU old "
              f"{[round(t['fit_cpu'], 2) for t in times['old']]} s, new "
              f"{[round(t['fit_cpu'], 2) for t in times['new']]} s; median train loop old "
              f"{train['old']:.2f} s, new {train['new']:.2f} s; new/old fit "
              f"{ratios[f'{name}_fit']}, CPU {ratios[f'{name}_fit_cpu']}, train "
              f"{ratios[f'{name}_train']}; same test accuracy: "
              f"{same_acc}; load {load()}", flush=True)
    ratios["all_fit"] = round(totals["new"] / totals["old"], 3)
    ratios["all_fit_cpu"] = round(cpu_totals["new"] / cpu_totals["old"], 3)
    print(f"load average after: {load()}")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
