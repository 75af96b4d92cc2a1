"""The 2×2 max pool (``rankrobust.models.pooling``) against ``nn.MaxPool2d(2)``.

Ratios are native time / ours (> 1: ours is faster), medians of interleaved rounds (A, B, A, B,
…, after one warm-up each), with the load average printed next to each:

  pool_forward            F.max_pool2d vs max_pool_2x2 on LeNet-5's first pool input
                          (256, 6, 28, 28), no graph
  lenet_predict           LeNet-5 logits of 1,000 test images under torch.no_grad
  square_attack           Square (ℓ∞, ε 0.1, 300 queries) on 100 images: forward passes only
  lenet_forward_backward  LeNet-5 forward + ∇ₓ of the loss, batch 256: both sides run the native
                          kernel when autograd records (reference: expect ≈ 1)

Both sides compute the same numbers (asserted: logits, Square's examples, gradients).
``--clock cpu`` uses ``time.process_time`` (steadier on a loaded machine with 1 thread).

    .venv/bin/python benchmarks/bench_pooling.py [--threads 1] [--repeats 5] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import rankrobust.models.lenet as lenet_module
from rankrobust.attacks import input_gradient, square
from rankrobust.data import load_dataset
from rankrobust.models.pooling import max_pool_2x2
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


@contextmanager
def native_pooling() -> Iterator[None]:
    """LeNet-5 built with ``nn.MaxPool2d(2)``, as before the fast pool."""
    fast = lenet_module.MaxPool2x2
    lenet_module.MaxPool2x2 = lambda: nn.MaxPool2d(2)  # type: ignore[assignment,misc,return-value]
    try:
        yield
    finally:
        lenet_module.MaxPool2x2 = fast  # type: ignore[misc]


def interleaved(native: Callable[[], Any], ours: Callable[[], Any], repeats: int,
                clock: Callable[[], float]) -> tuple[float, Any, Any]:
    """(median native time / median ours, native's last output, ours' last output)."""
    out = [native(), ours()]
    times: list[list[float]] = [[], []]
    for _ in range(repeats):
        for i, fn in enumerate((native, ours)):
            start = clock()
            out[i] = fn()
            times[i].append(clock() - start)
    return statistics.median(times[0]) / statistics.median(times[1]), out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    ratios: dict[str, Any] = {"threads": args.threads, "clock": args.clock, "loadavg_start": load()}

    def report(key: str, value: float) -> None:
        ratios[key], ratios[f"loadavg_{key}"] = round(value, 2), load()
        print(f"{key}: native / ours = {value:.2f} (load average {ratios[f'loadavg_{key}']})")

    gen = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(256, 6, 28, 28, generator=gen))
    ratio, pa, pb = interleaved(lambda: F.max_pool2d(a, 2), lambda: max_pool_2x2(a),
                                args.repeats * 4, clock)
    assert torch.equal(pa, pb)
    report("pool_forward", ratio)

    with native_pooling():
        native = fit("mnist5k", "lenet5", TrainConfig(epochs=1, progress=False, device="cpu")).model
    ours = lenet_module.LeNet5((1, 28, 28), 10)
    ours.load_state_dict(native.state_dict())
    native.eval()
    ours.eval()
    x, y = load_dataset("mnist5k", "test")

    def predict(model: nn.Module) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.no_grad():
                return model(x)
        return run

    ratio, la, lb = interleaved(predict(native), predict(ours), args.repeats, clock)
    assert torch.equal(la, lb)
    report("lenet_predict", ratio)

    def attack(model: nn.Module) -> Callable[[], torch.Tensor]:
        return lambda: square(model, x[:100], y[:100], [0.1], n_queries=300,
                              generator=torch.Generator().manual_seed(0)).x_adv

    ratio, xa, xb = interleaved(attack(native), attack(ours), max(1, args.repeats // 2), clock)
    assert torch.equal(xa, xb)
    report("square_attack", ratio)

    def grads(model: nn.Module) -> Callable[[], torch.Tensor]:
        return lambda: torch.cat([input_gradient(model, x[:256], y[:256]) for _ in range(5)])

    ratio, ga, gb = interleaved(grads(native), grads(ours), args.repeats, clock)
    assert torch.equal(ga, gb)
    report("lenet_forward_backward", ratio)
    ratios["loadavg_end"] = load()
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
