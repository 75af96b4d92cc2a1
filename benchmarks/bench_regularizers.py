"""Cost and fidelity of nuclear-norm regularization: fast (amortized Gram-eigh) vs exact (SVD).

Part 1, step time: one Adam training step at batch 128 on LeNet-5 and a 784-1024-1024-10 MLP
(MNIST-shaped random data, 2 threads): plain; nuclear ``proximal`` and ``subgradient`` with the
fast method; and the naive baseline, one exact SVD of every weight matrix every step. Variants
run interleaved step by step (round r runs one step of each), so machine load hits them alike.
Rounds are grouped into windows of at least one full refresh period; a window's ratio is the
variant's summed step time over the plain variant's in the same window, and the reported ratio
is the median over windows (amortized refreshes stay in; load spikes are shared or voted out).
Both wall time and process CPU time are measured (CPU time is far less sensitive to other
processes on a shared machine; wall time is the number that matters on a quiet one).

Part 2, fidelity: LeNet-5 on mnist5k (Adam, lr 2e-3, batch 64, cosine) natural, and nuclear
(both modes) with ``exact`` (SVD every step) and ``fast``: test accuracy and per-layer effective
rank (Roy & Vetterli 2007, computed here with ``torch.linalg.svdvals``).

    .venv/bin/python benchmarks/bench_regularizers.py [--quick] [--skip-train] [--threads N]

The last printed line is one JSON object with the ratios and the fast-vs-exact differences.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.data import load_dataset
from rankrobust.methods import Penalty, TrainingMethod, method_from_config
from rankrobust.methods.nuclear import SVD_MIN_EVERY, auto_svd_every, nuclear_penalty_hooks
from rankrobust.models import build_model
from rankrobust.regularizers import select_weights
from rankrobust.training import TrainConfig, TrainState, seed_everything, train
from rankrobust.training.fit import model_spec_for

BATCH = 128
LAMBDA_STEP = 1e-3  # λ for the timing runs (the cost does not depend on it)


def effective_rank(weight: torch.Tensor) -> float:
    """exp(entropy of σ / Σσ) of the (out, rest) matrix."""
    s = torch.linalg.svdvals(weight.detach().reshape(weight.shape[0], -1).double())
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "mlp":
        return build_model("mlp", (1, 28, 28), 10, hidden=[1024, 1024])
    return build_model("lenet5", (1, 28, 28), 10)


class Stepper:
    """One model + Adam + optional nuclear penalty; ``step()`` runs one loop step, timed.

    The step is the training loop's: objective, the method's loss terms, backward, optimizer
    step, then its prox steps with the lr of the step taken.
    """

    def __init__(self, model_name: str, mode: str | None, method: str = "fast", every: int = 0):
        self.model = _model(model_name)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.state = TrainState(self.model, self.opt, TrainConfig(), torch.device("cpu"))
        self.penalty = Penalty()
        self.every: list[int] = []
        if mode is not None:
            refs = select_weights(self.model)
            self.penalty = nuclear_penalty_hooks(refs, LAMBDA_STEP, mode, method, every)  # type: ignore[arg-type]
            self.every = [every or (1 if method == "exact" else auto_svd_every(*r.shape, SVD_MIN_EVERY[mode]))
                          for r in refs]
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        cpu, start = time.process_time(), time.perf_counter()
        loss = F.cross_entropy(self.model(x), y)
        for term in self.penalty.loss_terms.values():
            loss = loss + term(self.state)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = self.state.lr
        self.opt.step()
        self.state.step += 1
        for prox in self.penalty.prox_steps:
            prox(self.state.step, lr)
        self.wall.append(time.perf_counter() - start)
        self.cpu.append(time.process_time() - cpu)


def window_ratio(v: list[float], ref: list[float], window: int) -> float:
    """Median over consecutive windows of Σ v / Σ ref."""
    ratios = [sum(v[i : i + window]) / sum(ref[i : i + window])
              for i in range(0, len(v) - window + 1, window)]
    return statistics.median(ratios)


def time_steps(model_name: str, windows: int, naive_rounds: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(BATCH, 1, 28, 28, generator=g), torch.randint(0, 10, (BATCH,), generator=g))
               for _ in range(4)]
    variants: dict[str, Stepper] = {
        "plain": Stepper(model_name, None),
        "proximal": Stepper(model_name, "proximal"),
        "subgradient": Stepper(model_name, "subgradient"),
    }
    naive = {"plain": Stepper(model_name, None), "naive": Stepper(model_name, "proximal", "exact", 1)}
    ks = variants["proximal"].every
    window = max(max(ks), 40)
    rounds = windows * window
    print(f"{model_name}: refresh every {ks} steps; {rounds} interleaved rounds", flush=True)
    for r in range(3):  # warm-up, not recorded
        for v in [*variants.values(), *naive.values()]:
            v.step(*batches[r % len(batches)])
    for v in [*variants.values(), *naive.values()]:
        v.wall.clear()
        v.cpu.clear()
    for r in range(rounds):
        x, y = batches[r % len(batches)]
        order = list(variants.values())
        for v in order[r % 3:] + order[: r % 3]:
            v.step(x, y)
    for r in range(naive_rounds):
        x, y = batches[r % len(batches)]
        for v in naive.values():
            v.step(x, y)
    plain = variants["plain"]
    out: dict[str, float] = {}
    for name in ("proximal", "subgradient"):
        out[name] = window_ratio(variants[name].wall, plain.wall, window)
        out[name + "_cpu"] = window_ratio(variants[name].cpu, plain.cpu, window)
    out["naive"] = window_ratio(naive["naive"].wall, naive["plain"].wall, naive_rounds)
    out["naive_cpu"] = window_ratio(naive["naive"].cpu, naive["plain"].cpu, naive_rounds)
    print(f"  plain step: median wall {1e3 * statistics.median(plain.wall):.2f} ms, "
          f"cpu {1e3 * statistics.median(plain.cpu):.2f} ms")
    for k, v in out.items():
        print(f"  {k:16s} {v:.3f}x plain")
    return out


def train_lenet(reg: TrainingMethod, epochs: int) -> tuple[float, list[float], float]:
    train_data, test_data = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
    seed_everything(0)
    model = model_spec_for("mnist5k", "lenet5").build()
    config = TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, progress=False, method=reg)
    result = train(model, train_data, test_data, config)
    ranks = [effective_rank(r.parameter) for r in select_weights(model)]
    return float(result.final["test_acc"]), ranks, result.seconds


def fidelity(epochs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    acc, ranks, sec = train_lenet(method_from_config("natural"), epochs)
    print(f"natural                 acc {acc:.3f}  erank {[round(v, 2) for v in ranks]}  {sec:.1f}s")
    for mode, lam in (("proximal", 1.0), ("subgradient", 3e-3)):
        res: dict[str, tuple[float, list[float]]] = {}
        for method in ("exact", "fast"):
            reg = method_from_config({"name": "nuclear", "lambda_nuclear": lam,
                                      "nuclear_mode": mode, "nuclear_method": method})
            acc, ranks, sec = train_lenet(reg, epochs)
            res[method] = (acc, ranks)
            print(f"{mode:11s} λ={lam:<6g} {method:5s} acc {acc:.3f}  erank "
                  f"{[round(v, 2) for v in ranks]}  {sec:.1f}s", flush=True)
        (acc_e, r_e), (acc_f, r_f) = res["exact"], res["fast"]
        out[f"erank_max_rel_diff_{mode}"] = max(abs(f - e) / e for e, f in zip(r_e, r_f, strict=True))
        out[f"acc_diff_points_{mode}"] = 100 * abs(acc_f - acc_e)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and epochs")
    parser.add_argument("--skip-train", action="store_true", help="only the step timing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the issue: 2)")
    parser.add_argument("--models", default="lenet5,mlp", help="comma-separated: lenet5,mlp")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {}
    plan: dict[str, tuple[int, int]] = {"lenet5": (9, 30), "mlp": (2, 3)}  # (windows, naive steps)
    if args.quick:
        plan = {"lenet5": (3, 10), "mlp": (1, 2)}
    runner: Callable[[str, int, int], dict[str, float]] = time_steps
    for name, (rounds, naive_rounds) in plan.items():
        if name not in args.models.split(","):
            continue
        for k, v in runner(name, rounds, naive_rounds).items():
            result[f"{name}_{k}"] = round(v, 3)
    if not args.skip_train:
        for k, v in fidelity(3 if args.quick else 8).items():
            result[k] = round(v, 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
