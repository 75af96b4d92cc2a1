"""Train K compatible runs as one stacked model: one optimizer step serves all K.

The runs of a study are small networks on one dataset (seeds × λ × methods); alone, each step
is a handful of small kernels. Runs that share the architecture, the data, the optimizer and its
schedule (:func:`compat_key`) and whose methods stack (:mod:`rankrobust.methods.stacking`) train
here together: weights (K, *shape) in one module (:mod:`rankrobust.training.stacked_model`), one
Adam/SGD over them, and the loss Σ_k L_k(θ_k), so that ∂/∂θ_k is run k's solo gradient. Adam,
SGD (momentum) and weight decay are elementwise, the lr schedule is shared, so every run follows
its solo trajectory up to float reassociation: within 1e-5 on the tests' runs; over longer runs
on real data, sign functions (PGD, ℓ1 subgradient) and ReLU/max-pool ties amplify it as much as
running the solo loop with another thread count does (see benchmarks/RESULTS.md, bench_study).

Per run, exactly as :func:`rankrobust.training.fit.fit`: initial weights from
``seed_everything(seed); spec.build()``, the data order ``torch.randperm(n, generator=gen)`` per
epoch from ``gen = seed_everything(seed)``, the method's objective, loss terms, prox and final
steps, per-epoch metrics (``epoch_seconds`` is the run's share of the group's time), structure
records, validation metrics. Runs of one seed and a natural objective see the same batches:
they are fed one shared batch (B, C, H, W), and the first layer serves all K with one GEMM.

A run whose loss becomes NaN/inf comes back as its :class:`TrainingDivergedError` while the
others finish (its slice is zeroed so it cannot disturb a batched decomposition). Any other
exception ends the whole group: :func:`fit_many` then trains each run alone.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from rankrobust.data import load_dataset
from rankrobust.device import resolve_device
from rankrobust.errors import DataError, TrainingDivergedError
from rankrobust.methods.stacking import (
    StackedPenalty,
    StackedRef,
    cross_entropy_per_run,
    objective_key,
    shares_inputs,
    stack_key,
    stacked_objective,
    stacked_penalty,
)
from rankrobust.regularizers import select_weights
from rankrobust.structure import analyze, analyze_delta, snapshot
from rankrobust.training.callbacks import TrainState
from rankrobust.training.config import TrainConfig
from rankrobust.training.evaluate import evaluate
from rankrobust.training.fit import FitResult, fit, model_spec_for, split_data
from rankrobust.training.loop import TrainResult, make_schedule
from rankrobust.training.seeding import seed_everything
from rankrobust.training.stacked_model import can_stack_network, stack_networks, unstack_into
from rankrobust.training.structure_tracking import RECORD, structure_rows

# Fields that may differ between runs of one group (everything else must be equal).
PER_RUN_FIELDS = ("seed", "method", "progress", "track_structure")
DEFAULT_MAX_GROUP = 10  # runs per stack (one seed's natural-objective runs of the small preset)


class RunLike(Protocol):
    """What grouping reads of a run (``rankrobust.experiments.RunConfig`` is one)."""

    dataset: str
    model: str
    model_options: dict[str, Any]
    data_dir: str | None
    train: TrainConfig


def compat_key(dataset: str, model: str, model_options: dict[str, Any] | None,
               data_dir: str | os.PathLike[str] | None, config: TrainConfig) -> str:
    """Runs with equal keys may share a stack: data, architecture, loop and optimizer settings."""
    loop = {f: getattr(config, f) for f in config.__dataclass_fields__ if f not in PER_RUN_FIELDS}
    return json.dumps([dataset, model, model_options or {}, str(data_dir or ""), loop],
                      sort_keys=True, default=str)


def can_stack(configs: Sequence[TrainConfig]) -> bool:
    """Whether these runs (of one dataset and model) can train as one stack."""
    if not configs:
        return False
    okeys = {objective_key(c.method) for c in configs}
    loops = {compat_key("", "", None, None, c) for c in configs}
    return (None not in okeys and len(okeys) == 1 and len(loops) == 1
            and all(stacks(c) for c in configs))


def stacks(config: TrainConfig) -> bool:
    """Whether a run may join a stack: its method's objective and penalty stack, and it keeps its
    last epoch (epoch selection, :mod:`rankrobust.training.selection`, trains solo)."""
    return (objective_key(config.method) is not None and stack_key(config.method) is not None
            and config.select_epoch == "last")


def can_stack_model(dataset: str, model: str, model_options: dict[str, Any] | None = None) -> bool:
    """Whether ``model`` on ``dataset`` is a run-safe architecture (built on the meta device)."""
    spec = model_spec_for(dataset, model, model_options)
    with torch.device("meta"):
        return can_stack_network(spec.build())


def stack_groups(runs: Sequence[RunLike], max_size: int = DEFAULT_MAX_GROUP) -> list[list[int]]:
    """Indices of ``runs`` in groups to train together (singletons train solo), in run order.

    Compatible runs (equal :func:`compat_key` and objective) are grouped; those with a natural
    objective are split by seed first (one seed's runs share their batches), and the seeds left
    alone are stacked together. Groups have at most ``max_size`` runs.
    """
    stackable: dict[tuple[Hashable, ...], list[int]] = defaultdict(list)
    groups: list[list[int]] = []
    models: dict[str, bool] = {}
    for i, run in enumerate(runs):
        method = run.train.method
        mkey = json.dumps([run.dataset, run.model, run.model_options], sort_keys=True, default=str)
        if mkey not in models:
            models[mkey] = can_stack_model(run.dataset, run.model, run.model_options)
        okey = objective_key(method)
        if not stacks(run.train) or not models[mkey]:
            groups.append([i])
            continue
        key = compat_key(run.dataset, run.model, run.model_options, run.data_dir, run.train)
        stackable[(key, okey)].append(i)
    for (_, okey), members in stackable.items():
        parts = [members]
        if shares_inputs(okey):
            by_seed: dict[int, list[int]] = defaultdict(list)
            for i in members:
                by_seed[runs[i].train.seed].append(i)
            parts = [p for p in by_seed.values() if len(p) > 1]
            parts.append([i for p in by_seed.values() if len(p) == 1 for i in p])
        for part in parts:
            groups += [part[j : j + max_size] for j in range(0, len(part), max_size)]
    return sorted(groups, key=min)


def stacked_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The solo optimizer (:func:`~rankrobust.training.loop.make_optimizer`) over (K, ...) tensors,
    as one fused kernel per step (the same elementwise update, without K·params small kernels)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, fused=True)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def _blocks(configs: Sequence[TrainConfig]) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal :func:`stack_key` in ``configs`` (sorted by block)."""
    bounds, start = [], 0
    for i in range(1, len(configs) + 1):
        if i == len(configs) or stack_key(configs[i].method) != stack_key(configs[start].method):
            bounds.append((start, i))
            start = i
    return bounds


@torch.no_grad()
def evaluate_stacked(model: nn.Module, x: torch.Tensor, y: torch.Tensor, runs: int,
                     batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean CE (K,), accuracy (K,)) of the K runs on one shared (x (N, ...), y (N,))."""
    device = next(model.parameters()).device
    loss_sum = torch.zeros(runs, dtype=torch.float64, device=device)
    correct = torch.zeros(runs, dtype=torch.long, device=device)
    model.eval()
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        yk = yb[:, None].expand(len(yb), runs)  # (b, K)
        logits = model(xb).view(len(yb), runs, -1)
        loss_sum += cross_entropy_per_run(logits.flatten(1), yk).double() * len(yb)
        correct += (logits.argmax(-1) == yk).sum(0)
    model.train()
    n = max(len(x), 1)
    return loss_sum / n, correct.double() / n


StackedOutcome = FitResult | TrainingDivergedError


def train_stacked(
    dataset: str,
    model: str,
    configs: Sequence[TrainConfig],
    model_options: dict[str, Any] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[StackedOutcome]:
    """Per run (in ``configs`` order) what ``fit(dataset, model, config, ...)`` returns, or the
    TrainingDivergedError it would raise; trained as one stack (ValueError unless
    :func:`can_stack` and :func:`can_stack_model`)."""
    if not can_stack(configs) or not can_stack_model(dataset, model, model_options):
        raise ValueError("these runs do not stack (see rankrobust.training.stacked.can_stack)")
    order = sorted(range(len(configs)), key=lambda i: repr(stack_key(configs[i].method)))
    runs = [configs[i] for i in order]
    k, first = len(runs), runs[0]
    spec = model_spec_for(dataset, model, model_options)
    train_data = load_dataset(dataset, "train", data_dir)
    test_x, test_y = load_dataset(dataset, "test", data_dir)
    train_data, val_data = split_data(train_data, first)
    nets = []
    for c in runs:
        seed_everything(c.seed)
        nets.append(spec.build())
    gens = [seed_everything(c.seed) for c in runs]
    device = resolve_device(first.device)
    net = stack_networks(nets).to(device)
    x_train, y_train = train_data[0].to(device), train_data[1].to(device)
    n = len(x_train)
    if n == 0:
        raise DataError("empty training set")
    steps_per_epoch = math.ceil(n / first.batch_size)
    params = dict(net.named_parameters())
    optimizer = stacked_optimizer(list(params.values()), first)
    schedule = make_schedule(optimizer, first, steps_per_epoch)
    info = TrainState(net, optimizer, first, device, steps_per_epoch=steps_per_epoch)
    okey = objective_key(first.method)
    shared = shares_inputs(okey) and len({c.seed for c in runs}) == 1
    objective = stacked_objective([c.method for c in runs], [c.seed for c in runs])
    penalties = _penalties(runs, nets[0], params)
    tracked = [r for r, c in enumerate(runs) if c.track_structure]
    states = [TrainState(m, optimizer, c, device, steps_per_epoch=steps_per_epoch)
              for m, c in zip(nets, runs, strict=True)]
    failed: dict[int, TrainingDivergedError] = {}

    start = time.perf_counter()
    init: dict[str, torch.Tensor] = {}  # W₀ of every tracked run, for the delta_* columns
    record_structure(nets, tracked, states, 0, init)
    bar = tqdm(total=first.epochs * steps_per_epoch, unit="step", dynamic_ncols=True, leave=False,
               disable=not any(c.progress for c in runs))
    try:
        for epoch in range(first.epochs):
            epoch_start = time.perf_counter()
            net.train()
            loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
            pen_sum = torch.zeros(k, dtype=torch.float64, device=device)
            term_sums: dict[str, torch.Tensor] = {}
            correct = torch.zeros(k, dtype=torch.long, device=device)
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)  # (K, n)
            for i in range(0, n, first.batch_size):
                idx = perms[:, i : i + first.batch_size]  # (K, b)
                xb, yb = _batch(x_train, y_train, idx, shared)
                losses, logits = objective(net, xb, yb, info)  # (K,), (b, K, classes)
                for a, b, penalty in penalties:
                    for name, term in penalty.loss_terms.items():
                        pen = term(info).double()  # (S,), detached: gradients in grad_steps
                        pen_sum[a:b] += pen
                        term_sums.setdefault(name, torch.zeros_like(pen_sum))[a:b] += pen
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                for _, _, penalty in penalties:
                    for add_gradient in penalty.grad_steps:
                        add_gradient()
                lr = info.lr
                optimizer.step()
                schedule.step()
                info.step += 1
                for _, _, penalty in penalties:
                    for prox in penalty.prox_steps:
                        prox(info.step, lr)
                loss_sum += losses.detach().double() * idx.shape[1]
                correct += (logits.detach().argmax(-1) == yb).sum(0)
                bar.update(1)
            test_loss, test_acc = evaluate_stacked(net, test_x, test_y, k, first.eval_batch_size)
            if val_data is not None:
                val_loss, val_acc = evaluate_stacked(net, val_data[0], val_data[1], k,
                                                     first.eval_batch_size)
            seconds = (time.perf_counter() - epoch_start) / k
            for r in range(k):
                if r in failed:
                    continue
                train_loss = float(loss_sum[r]) / n
                if not math.isfinite(train_loss) or not math.isfinite(float(pen_sum[r])):
                    failed[r] = TrainingDivergedError(f"training diverged in epoch {epoch + 1}: "
                                                      f"loss is {train_loss} (try a smaller lr)")
                    _retire(net, optimizer, r)
                    continue
                metrics: dict[str, Any] = {
                    "epoch": epoch + 1, "lr": info.lr, "train_loss": train_loss,
                    "penalty": float(pen_sum[r]) / steps_per_epoch,
                    "train_acc": float(correct[r]) / n,
                    "test_loss": float(test_loss[r]), "test_acc": float(test_acc[r]),
                }
                if val_data is not None:  # as solo: rankrobust.training.selection.EpochSelector
                    metrics["val_loss"], metrics["val_acc"] = float(val_loss[r]), float(val_acc[r])
                metrics["epoch_seconds"] = seconds
                for name in next(p.loss_terms for a, b, p in penalties if a <= r < b):  # solo order
                    metrics[f"penalty_{name}"] = float(term_sums[name][r]) / steps_per_epoch
                states[r].history.append(metrics)
            if tracked:
                unstack_into(net, nets)
                record_structure(nets, [r for r in tracked if r not in failed], states, epoch + 1,
                                 init)
        for _, _, penalty in penalties:
            for final in penalty.final_steps:
                final()
    finally:
        bar.close()
        net.eval()
    unstack_into(net, nets)
    for m in nets:  # as fit leaves its model: on the training device, in eval mode
        m.to(device).eval()
    seconds = (time.perf_counter() - start) / k
    results: list[StackedOutcome] = []
    for r, c in enumerate(runs):
        if r in failed:
            results.append(failed[r])
            continue
        history = states[r].history
        if val_data is not None and history:
            history[-1]["val_loss"], history[-1]["val_acc"] = evaluate(
                nets[r], val_data[0].to(device), val_data[1].to(device), c.eval_batch_size)
        result = TrainResult(history, states[r].records, seconds)
        results.append(FitResult(nets[r], spec, c, dataset, result, stack_size=k))
    back = [results[0]] * k
    for r, i in enumerate(order):
        back[i] = results[r]
    return back


def _batch(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, shared: bool
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels (b, K)) of the K runs' batches ``idx`` (K, b) of x (N, C, H, W), y (N,).

    Shared (all rows of ``idx`` equal): x[idx₀] (b, C, H, W); else run-folded x (b, K·C, H, W)
    with [:, k·C:(k+1)·C] = x[idx_k], one gather with the (b, K) index idxᵀ.
    """
    if shared:
        return x[idx[0]], y[idx[0]][:, None].expand(-1, idx.shape[0])
    xb = x[idx.T]  # (b, K, C, H, W)
    return xb.reshape(xb.shape[0], -1, *xb.shape[3:]), y[idx.T]


def _penalties(runs: Sequence[TrainConfig], template: nn.Module, params: dict[str, nn.Parameter]
               ) -> list[tuple[int, int, StackedPenalty]]:
    """(start, stop, penalty) of each block of ``runs`` (sorted by stack key)."""
    out = []
    for a, b in _blocks(runs):
        def select(layers: str, a: int = a, b: int = b) -> list[StackedRef]:
            return [StackedRef(r.path, params[f"{r.path}.{r.param}"], a, b)
                    for r in select_weights(template, layers)]
        out.append((a, b, stacked_penalty([c.method for c in runs[a:b]], select)))
    return out


@torch.no_grad()
def record_structure(nets: Sequence[nn.Module], runs: Sequence[int], states: Sequence[TrainState],
                     epoch: int, init: dict[str, torch.Tensor]) -> None:
    """Append to each run's ``records`` the rows its
    :class:`~rankrobust.training.structure_tracking.StructureTracker` would for ``epoch``, from one
    :func:`~rankrobust.structure.analyze` (and one ``analyze_delta``) call over all runs;
    ``init``, empty at the first call, is filled there with the runs' W₀."""
    if not runs:
        return
    together = nn.ModuleDict({str(r): nets[r] for r in runs})
    if not init:
        init.update(snapshot(together))
    frame = analyze(together, "reshape", order=1.0)
    delta = analyze_delta(together, init, "reshape", order=1.0)
    for row in structure_rows(frame, delta, epoch):
        run, _, layer = str(row["layer"]).partition(".")
        states[int(run)].records.setdefault(RECORD, []).append({**row, "layer": layer})


@torch.no_grad()
def _retire(net: nn.Module, optimizer: torch.optim.Optimizer, run: int) -> None:
    """Zero a diverged run's weights and optimizer moments (the others are untouched)."""
    for p in net.parameters():
        p[run] = 0
        for value in optimizer.state.get(p, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                value[run] = 0


def fit_many(
    dataset: str,
    model: str,
    configs: Sequence[TrainConfig],
    model_options: dict[str, Any] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> list[FitResult | Exception]:
    """Each run's ``fit`` result or exception: stacked when the runs stack, else one by one."""
    if len(configs) > 1 and can_stack(configs) and can_stack_model(dataset, model, model_options):
        try:
            return list(train_stacked(dataset, model, configs, model_options, data_dir))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the group failed as a whole: each run alone decides
            warnings.warn(f"stacked training failed ({type(exc).__name__}: {exc}); "
                          "training the runs one by one", RuntimeWarning, stacklevel=2)
    out: list[FitResult | Exception] = []
    for c in configs:
        try:
            out.append(fit(dataset, model, c, model_options, data_dir))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - reported per run, as execute_run does
            out.append(exc)
    return out
