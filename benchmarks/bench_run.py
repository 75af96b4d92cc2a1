"""Worker time per study run, this checkout vs a base tree (issue #19: ≤ 0.8× today's).

Usage: ``git archive BASE src | tar -x -C /tmp/base19`` (the issue's "today" is e0ad58c, the
tree that ran the v1 ``paper`` study), then ``OMP_NUM_THREADS=1 .venv/bin/python
benchmarks/bench_run.py /tmp/base19/src [--repeats 3] [--epochs 1] [--n 300] [--only CASE ...]``.

A case is one whole study run, ``rankrobust.experiments.run.execute_run`` (data loading, model
build, training with structure tracking, the final metrics, then the evaluation: curves,
AutoAttack, DeepFool ρ_adv, sanity checks, interventions, spectra), built from the same
configuration dict in both trees: the v1 ``paper`` preset's run on Fashion-MNIST (55,000
training images, 5,000 held out) with its evaluation list, at ``--epochs`` epochs and ``--n``
attacked test points. The issue's per-run times ("natural LeNet-5: 42 s training, 29 s
evaluation; PGD-adv LeNet-5: 258 s, 120 s" at 5 epochs and n = 1,000) are these cases at full
size. The ``lenet5-wide`` cases time the study v2's CNN instead (``--only natural-lenet5-wide
pgd-adv-lenet5-wide``, against a base that has that model: e2b5e84, where the study v2 started).

Each run is a fresh process whose ``PYTHONPATH`` is one tree, with 1 torch thread; the trees
alternate (base first in even repeats, this checkout first in odd ones) so that a change in
machine load hits both. Timed inside the process after the imports: CPU time of the whole run
(``time.process_time``; with one thread it is the worker time, and less disturbed by other
processes than wall time), wall time, and the run's own ``train_seconds`` / ``eval_seconds``.
The load average is printed before and after. The last line is one JSON object: per case and in
total, the ratio of median times new / old (below 1: faster now; the goal is ≤ 0.8).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from trees import load, run_in_tree

NEW = str(Path(__file__).resolve().parents[1] / "src")
SVD = {"kind": "svd", "keeps": [0.1, 0.25, 0.5, 1.0], "attack": "pgd", "eps": 0.1,
       "deepfool": False, "options": {"steps": 20}}
CASES: dict[str, dict[str, Any]] = {  # the v1 paper preset's runs on Fashion-MNIST (ε 0.3 / 3)
    "natural-lenet5": {"model": "lenet5", "method": {"name": "natural"}, "interventions": [SVD]},
    "pgd-adv-lenet5": {"model": "lenet5", "interventions": [SVD], "method": {
        "name": "pgd-adv", "eps": 0.1, "steps": 5, "warmup_epochs": 1}},
    "l1+nuclear-lenet5": {"model": "lenet5", "interventions": [], "method": {
        "name": "l1+nuclear", "lambda_l1": 0.0001, "lambda_nuclear": 0.3}},
    "natural-mlp": {"model": "mlp", "method": {"name": "natural"}, "interventions": [SVD]},
    # the study v2's CNN (paper-v2's matched pair); needs a base that has it, e.g. e2b5e84
    "natural-lenet5-wide": {"model": "lenet5-wide", "method": {"name": "natural"},
                            "interventions": [SVD]},
    "pgd-adv-lenet5-wide": {"model": "lenet5-wide", "interventions": [SVD], "method": {
        "name": "pgd-adv", "eps": 0.1, "steps": 5, "warmup_epochs": 1}},
}
V1_CASES = ["natural-lenet5", "pgd-adv-lenet5", "l1+nuclear-lenet5", "natural-mlp"]
CODE = """
import json, sys, time, torch
torch.set_num_threads(1)
from rankrobust.configuration import from_dict
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.run import execute_run
config = from_dict(RunConfig, json.loads(sys.argv[1]), "run")
t0, c0 = time.perf_counter(), time.process_time()
r = execute_run(config)
assert r.status == "complete", r.error
print(json.dumps({"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0,
                  "train": r.train_seconds, "eval": r.eval_seconds, "acc": r.clean_accuracy}))
"""


def run_config(case: dict[str, Any], epochs: int, n: int) -> dict[str, Any]:
    """The v1 ``paper`` preset's run of ``case`` (its train and evaluation blocks, ε at the
    Fashion-MNIST scale 0.1) at ``epochs`` epochs and ``n`` attacked points."""
    eps = [0.01, 0.02, 0.05, 0.1, 0.15]
    return {
        "dataset": "fashion-mnist", "model": case["model"],
        "model_options": {"hidden": [150, 100]} if case["model"] == "mlp" else {},
        "train": {"epochs": epochs, "batch_size": 128, "optimizer": "adam", "lr": 0.001,
                  "schedule": "cosine", "validation_size": 5000, "device": "cpu",
                  "track_structure": True, "progress": False, "seed": 0,
                  "method": case["method"]},
        "evaluation": {
            "n": n, "batch_size": 500, "deepfool": True, "deepfool_options": {"max_iter": 30},
            "spectra": True, "sanity_checks": ["pgd", "autoattack"],
            "interventions": case["interventions"],
            "attacks": [
                {"attack": "fgsm", "norm": "inf", "epsilons": [0.0, *eps[:3], 0.1, 0.15]},
                {"attack": "fgsm", "norm": "2", "epsilons": [0.0, 0.25, 0.5, 1.0, 1.5, 2.0]},
                {"attack": "pgd", "norm": "inf", "epsilons": eps,
                 "options": {"steps": 20, "restarts": 1}},
                {"attack": "autoattack", "norm": "inf", "epsilons": [0.1],
                 "options": {"n_targets": 3, "n_queries": 1000}},
            ],
        },
    }


def time_one(tree: str, config: dict[str, Any]) -> dict[str, float]:
    return run_in_tree(tree, CODE, [json.dumps(config)], timeout=3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("base", nargs="?", default="/tmp/base19/src", help="the base tree's src/")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n", type=int, default=300, help="attacked test points (v1: 1,000)")
    parser.add_argument("--only", choices=list(CASES), nargs="+", default=V1_CASES,
                        help="the cases to time (default: the v1 paper study's four)")
    args = parser.parse_args()
    print(f"load average before: {load()}", flush=True)
    ratios: dict[str, dict[str, float]] = {}
    totals = {"old": 0.0, "new": 0.0}
    for name in args.only:
        config = run_config(CASES[name], args.epochs, args.n)
        times: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for repeat in range(args.repeats):
            for which in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
                times[which].append(time_one(args.base if which == "old" else NEW, config))
                last = times[which][-1]
                print(f"{name} {which}: cpu {last['cpu']:.1f} s (train {last['train']:.1f} s, "
                      f"eval {last['eval']:.1f} s), acc {last['acc']:.4f}, load {load()}",
                      flush=True)
        med = {w: {k: statistics.median(t[k] for t in times[w]) for k in ("cpu", "train", "eval")}
               for w in times}
        ratios[name] = {k: round(med["new"][k] / med["old"][k], 3) for k in ("cpu", "train", "eval")}
        for w in totals:
            totals[w] += med[w]["cpu"]
        print(f"{name}: new/old cpu {ratios[name]['cpu']:.3f} (train {ratios[name]['train']:.3f}, "
              f"eval {ratios[name]['eval']:.3f})", flush=True)
    print(f"load average after: {load()}", flush=True)
    print(json.dumps({"base": args.base, "epochs": args.epochs, "n": args.n,
                      "repeats": args.repeats, "cases": ratios,
                      "worker_time_ratio_all": round(totals["new"] / totals["old"], 3)}))


if __name__ == "__main__":
    main()
