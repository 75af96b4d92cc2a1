"""Per-epoch cost of each (model, method) kind of a study, measured cheaply, and the wall time of a
reproduce preset estimated from them.

On a shared, loaded machine an absolute time says little, so each kind is timed *against a
reference kind* whose quiet-machine cost is known (the issue's v1 measurements on Fashion-MNIST,
5 epochs of 55,000 images: LeNet-5 natural 42 s and PGD-adv (5 steps) 258 s of training, each
with its per-epoch test evaluation): natural and regularized kinds against LeNet-5 natural,
adversarial kinds against LeNet-5 PGD-adv. Each measurement is one training epoch on
``--images`` random 1×28×28 images (a step's cost does not depend on the pixels: PGD in training
has no early stop), reference and kind alternating, ``--repeats`` pairs; the ratio is the median
of the pairs' ratios, and the quiet cost = ratio × the reference's quiet cost (seconds per
1,000 training images).

``--estimate SCALE`` then expands ``rankrobust reproduce --scale SCALE`` and adds up, per run:
epochs × (training images (``train_size``, else 55,000) × cost + the per-epoch test and validation evaluation + the
validation robust accuracy where the epoch is selected on it) + the run's evaluation (v1's
measured LeNet-5 evaluation, 29 s natural and 120 s PGD-adv, scaled by the model's cost ratio;
MLP 5 s and 25 s), over ``--workers`` workers. The load average is printed
before and after; the last line is one JSON object.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_epoch_costs.py [--images 1024]
        [--repeats 3] [--models mlp lenet5-wide] [--estimate paper-v2 [--workers 2]]
        [--costs LOG: estimate from an earlier run's printed JSON, measuring nothing]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch

from rankrobust.experiments.grid import expand
from rankrobust.experiments.study import reproduce_study
from rankrobust.methods import method_from_config
from rankrobust.models import build_model
from rankrobust.training import TrainConfig, seed_everything, train

EPS = 0.1  # Fashion-MNIST's training ε
METHODS: dict[str, dict[str, Any]] = {
    "natural": {"name": "natural"},
    "weight-decay": {"name": "weight-decay", "lambda_wd": 1e-4},
    "l1": {"name": "l1", "lambda_l1": 1e-4},
    "nuclear": {"name": "nuclear", "lambda_nuclear": 0.3},
    "l1+nuclear": {"name": "l1+nuclear", "lambda_l1": 1e-4, "lambda_nuclear": 0.3},
    "lowrank": {"name": "lowrank", "rank_ratio": 0.25},
    "spectral-norm": {"name": "spectral-norm"},
    "fgsm-adv": {"name": "fgsm-adv", "eps": EPS},
    "fgsm-rs": {"name": "fgsm-rs", "eps": EPS},
    "pgd-adv-5": {"name": "pgd-adv", "eps": EPS, "steps": 5},
    "pgd-adv-7": {"name": "pgd-adv", "eps": EPS, "steps": 7},
    "trades-5": {"name": "trades", "eps": EPS, "steps": 5, "beta": 6.0},
}
# Quiet-machine seconds per 1,000 training images of the references (issue #19: LeNet-5, 5
# epochs × 55,000 images, 42 s natural and 258 s PGD-adv, less ≈ 1 s per epoch of test evaluation)
QUIET = {"lenet5/natural": (42 / 5 - 1) / 55, "lenet5/pgd-adv-5": (258 / 5 - 1) / 55}
EVAL_QUIET = {"natural": 29.0, "adversarial": 120.0}  # v1's per-run evaluation, LeNet-5
EVAL_MLP = {"natural": 5.0, "adversarial": 25.0}
TRAIN_IMAGES, EVAL_IMAGES = 55_000, 15_000  # per epoch: training; test curve + validation


def epoch_seconds(model_name: str, method: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one training epoch over (x, y) (batch 128, Adam)."""
    seed_everything(0)
    model = build_model(model_name, (1, 28, 28), 10)
    config = TrainConfig(epochs=1, batch_size=128, lr=1e-3, progress=False, device="cpu",
                         method=method_from_config(method))
    t0 = time.perf_counter()
    train(model, (x, y), None, config)
    return time.perf_counter() - t0


def reference_of(kind: str) -> str:
    adversarial = method_from_config(METHODS[kind]).kind == "adversarial"
    return "lenet5/pgd-adv-5" if adversarial else "lenet5/natural"


def quiet_cost(model_name: str, kind: str, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    """Quiet-machine seconds per 1,000 training images of (model, kind), by interleaved ratios."""
    ref = reference_of(kind)
    ref_model, ref_kind = ref.split("/")
    ratios = []
    for i in range(repeats):
        pair = [(ref_model, ref_kind), (model_name, kind)]
        times = {key: epoch_seconds(key[0], METHODS[key[1]], x, y)
                 for key in (pair if i % 2 == 0 else pair[::-1])}
        ratios.append(times[(model_name, kind)] / times[(ref_model, ref_kind)])
    return statistics.median(ratios) * QUIET[ref]


def estimate(scale: str, costs: dict[str, float], workers: int) -> dict[str, Any]:
    """Hours of the preset's runs from per-kind quiet costs (see the module docstring)."""
    train_s = eval_s = adv_cnn_s = 0.0
    for run in expand(reproduce_study(scale)):
        method = run.train.method
        kind = method.name
        if kind in ("pgd-adv", "trades"):  # measured with 5 (and PGD 7) steps
            kind = f"{kind}-{method.steps}"
        per_image = costs[f"{run.model}/{kind}"] / 1000
        clean = costs[f"{run.model}/natural"] / 1000 / 3  # a forward ≈ a third of a step
        epoch = (run.train.train_size or TRAIN_IMAGES) * per_image + EVAL_IMAGES * clean
        if run.train.select_epoch == "val_robust_acc":  # PGD-10 on 1,000: 11 passes
            epoch += 1000 * 11 * clean * 3
        adversarial = "adversarial" if method.kind == "adversarial" else "natural"
        is_cnn = run.model != "mlp"
        scale_eval = costs[f"{run.model}/natural"] / costs["lenet5/natural"] if is_cnn else 1.0
        seconds = run.train.epochs * epoch
        train_s += seconds
        adv_cnn_s += seconds if is_cnn and adversarial == "adversarial" else 0.0
        eval_s += EVAL_QUIET[adversarial] * scale_eval if is_cnn else EVAL_MLP[adversarial]
    return {"runs": len(expand(reproduce_study(scale))), "train_cpu_h": round(train_s / 3600, 2),
            "adversarial_cnn_train_cpu_h": round(adv_cnn_s / 3600, 2),
            "eval_cpu_h": round(eval_s / 3600, 2), "workers": workers,
            "wall_h": round((train_s + eval_s) / 3600 / workers, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet5-wide"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--estimate", default=None, help="a reproduce scale, e.g. paper-v2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--costs", default=None,
                        help="estimate from an earlier run's last line (JSON) instead of measuring")
    args = parser.parse_args()
    if args.costs:
        with open(args.costs, encoding="utf-8") as fh:
            costs = {**QUIET, **json.loads(fh.read().splitlines()[-1])["quiet"]}
        print(json.dumps({"estimate": estimate(args.estimate or "paper-v2", costs, args.workers)}))
        return
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (args.images,), generator=gen)
    epoch_seconds("mlp", METHODS["natural"], x[:256], y[:256])  # warm-up: first-call costs
    out: dict[str, Any] = {"images": args.images, "repeats": args.repeats,
                           "load_before": [round(v, 2) for v in os.getloadavg()], "quiet": {}}
    print(f"load average before: {out['load_before']}")
    costs: dict[str, float] = dict(QUIET)
    for model_name in args.models:
        for kind in args.methods:
            key = f"{model_name}/{kind}"
            costs[key] = quiet_cost(model_name, kind, x, y, args.repeats)
            out["quiet"][key] = round(costs[key], 4)
            print(f"{key:28s} {costs[key]:.3f} s / 1,000 training images (quiet, vs "
                  f"{reference_of(kind)})", flush=True)
    out["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(f"load average after: {out['load_after']}")
    if args.estimate:
        out["estimate"] = estimate(args.estimate, costs, args.workers)
        print(f"estimate for --scale {args.estimate}: {out['estimate']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
