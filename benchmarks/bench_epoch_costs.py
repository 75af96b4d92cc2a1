"""Per-epoch cost of each (model, method) kind of a study, measured cheaply, to size a preset.

For each model and method: one epoch of ``train`` on ``--images`` random 1×28×28 images (the
cost of a step does not depend on the pixels: PGD in training has no early stop), the fastest of
``--repeats`` (after one untimed warm-up epoch), reported as seconds per 1,000 training images; per model, the clean forward cost of evaluation (seconds per
1,000 images, what the per-epoch test curve and validation cost) and one validation robust
accuracy (PGD-10 on 1,000 validation images, what ``select_epoch: val_robust_acc`` adds per
epoch). ``lenet5`` natural and PGD-adv are the reference kinds: the issue's quiet-machine times
(5 epochs of 55,000 images: 42 s and 258 s of training) give the factor by which this (shared,
loaded) machine is slower, printed with the load average before and after. Last line: one JSON
object of every measurement.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_epoch_costs.py [--images 2048]
        [--repeats 2] [--models mlp lenet5 lenet5-wide] [--methods natural pgd-adv-5 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch

from rankrobust.methods import method_from_config
from rankrobust.models import build_model
from rankrobust.training import TrainConfig, evaluate, seed_everything, train
from rankrobust.training.selection import robust_accuracy

EPS = 0.1  # Fashion-MNIST's training ε
METHODS: dict[str, dict[str, Any]] = {
    "natural": {"name": "natural"},
    "weight-decay": {"name": "weight-decay", "lambda_wd": 1e-4},
    "l1": {"name": "l1", "lambda_l1": 1e-4},
    "nuclear": {"name": "nuclear", "lambda_nuclear": 0.3},
    "l1+nuclear": {"name": "l1+nuclear", "lambda_l1": 1e-4, "lambda_nuclear": 0.3},
    "spectral-norm": {"name": "spectral-norm"},
    "fgsm-adv": {"name": "fgsm-adv", "eps": EPS},
    "fgsm-rs": {"name": "fgsm-rs", "eps": EPS},
    "pgd-adv-5": {"name": "pgd-adv", "eps": EPS, "steps": 5},
    "pgd-adv-7": {"name": "pgd-adv", "eps": EPS, "steps": 7},
    "trades-5": {"name": "trades", "eps": EPS, "steps": 5, "beta": 6.0},
}
REFERENCE = {"natural": 42 / (5 * 55), "pgd-adv-5": 258 / (5 * 55)}  # s per 1,000 images, lenet5


def per_1000_train(model_name: str, method: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one training epoch over (x, y), per 1,000 images (batch 128, Adam)."""
    seed_everything(0)
    model = build_model(model_name, (1, 28, 28), 10)
    config = TrainConfig(epochs=1, batch_size=128, lr=1e-3, progress=False, device="cpu",
                         method=method_from_config(method))
    t0 = time.perf_counter()
    train(model, (x, y), None, config)
    return (time.perf_counter() - t0) / len(x) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet5", "lenet5-wide"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (args.images,), generator=gen)
    per_1000_train("mlp", METHODS["natural"], x[:256], y[:256])  # warm-up: first-call costs
    load_before = [round(v, 2) for v in os.getloadavg()]
    print(f"load average before: {load_before}")
    out: dict[str, Any] = {"images": args.images, "load_before": load_before, "train": {}}
    for model_name in args.models:
        model = build_model(model_name, (1, 28, 28), 10).eval()
        t0 = time.perf_counter()
        evaluate(model, x, y, 1000)
        clean = (time.perf_counter() - t0) / len(x) * 1000
        t0 = time.perf_counter()
        robust_accuracy(model, x[:1000], y[:1000], EPS, 10, 1000)
        robust = time.perf_counter() - t0
        out.setdefault("eval_clean_per_1000", {})[model_name] = round(clean, 4)
        out.setdefault("val_robust_1000_pgd10", {})[model_name] = round(robust, 3)
        print(f"{model_name}: clean eval {clean:.3f} s / 1,000; val robust (1,000, PGD-10) {robust:.2f} s")
        for name in args.methods:
            seconds = min(per_1000_train(model_name, METHODS[name], x, y)
                          for _ in range(args.repeats))
            out["train"][f"{model_name}/{name}"] = round(seconds, 4)
            print(f"  {name:14s} {seconds:7.3f} s / 1,000 training images", flush=True)
    out["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(f"load average after: {out['load_after']}")
    slow = [out["train"][f"lenet5/{k}"] / v for k, v in REFERENCE.items()
            if f"lenet5/{k}" in out["train"]]
    if slow:
        out["slowdown_vs_reference"] = round(sum(slow) / len(slow), 3)
        print(f"this machine vs the issue's quiet-machine lenet5 times: ×{out['slowdown_vs_reference']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
