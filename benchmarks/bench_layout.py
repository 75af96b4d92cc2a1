"""Channels-last vs contiguous weights of the convolutional models (models/layout.py).

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_layout.py [--pairs 15]``.

Per (model, batch): a training step (forward, cross-entropy, backward to the weights) and a
forward+backward to the input (what every PGD / APGD step costs), each timed on the model as
built (channels-last weights) and on a copy with the same weights made contiguous. The two
alternate ``--pairs`` times; the ratio per pair is contiguous / channels-last CPU time
(``time.process_time``, 1 thread: less disturbed by other processes than wall time), and the
median of the ratios is reported (above 1: channels-last is faster). Outputs of the two layouts
are compared (max abs difference of the input gradients). The load average is printed before and
after; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rankrobust.models import build_model

CASES = (("lenet5-wide", (1, 28, 28), 500), ("lenet5-wide", (1, 28, 28), 64),
         ("lenet5", (1, 28, 28), 500), ("cnn-small", (1, 28, 28), 256))


def input_gradient(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    xa = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xa).logsumexp(1).sum(), xa)
    return grad


def cpu_seconds(fn: Callable[[torch.nn.Module], object], model: torch.nn.Module) -> float:
    t0 = time.process_time()
    fn(model)
    return time.process_time() - t0


def measure(name: str, shape: tuple[int, int, int], batch: int, pairs: int) -> dict[str, float]:
    """Median contiguous / channels-last CPU-time ratios of one model at one batch size."""
    torch.manual_seed(0)
    built = build_model(name, shape, 10).eval()  # channels-last weights
    plain = build_model(name, shape, 10).eval()
    for mine, theirs in zip(plain.parameters(), built.parameters(), strict=True):
        mine.data = theirs.detach().clone(memory_format=torch.contiguous_format)
    x, y = torch.rand(batch, *shape), torch.randint(0, 10, (batch,))

    def step(model: torch.nn.Module) -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def to_input(model: torch.nn.Module) -> torch.Tensor:
        return input_gradient(model, x)

    row: dict[str, float] = {}
    for label, fn in (("train_step", step), ("input_grad", to_input)):
        fn(built), fn(plain)  # warm-up
        ratios = [cpu_seconds(fn, plain) / cpu_seconds(fn, built) for _ in range(pairs)]
        row[label] = round(statistics.median(ratios), 3)
    row["max_abs_diff"] = float((to_input(built) - to_input(plain)).abs().max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    results: dict[str, dict[str, float]] = {}
    for name, shape, batch in CASES:
        row = measure(name, shape, batch, args.pairs)
        results[f"{name}/{batch}"] = row
        print(f"{name} batch {batch}: contiguous / channels-last: training step "
              f"{row['train_step']:.2f}×, input gradient {row['input_grad']:.2f}× "
              f"(max |Δ grad| {row['max_abs_diff']:.1e})", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    print(json.dumps({"pairs": args.pairs, "cases": results}))


if __name__ == "__main__":
    main()
