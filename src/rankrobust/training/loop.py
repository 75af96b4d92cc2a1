"""The training loop: mini-batch SGD/Adam with an lr schedule, hooks, and per-epoch metrics."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from rankrobust.device import resolve_device
from rankrobust.errors import DataError, TrainingDivergedError
from rankrobust.methods import Objective, Penalty
from rankrobust.training.callbacks import Callback, TrainState
from rankrobust.training.config import TrainConfig
from rankrobust.training.evaluate import evaluate
from rankrobust.training.seeding import seed_everything
from rankrobust.training.selection import EpochSelector
from rankrobust.training.structure_tracking import StructureTracker

Data = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TrainResult:
    """Per-epoch metrics (``history``), callback tables (``records``) and the total time.

    ``best_epoch``: the 1-based epoch whose weights the model holds when ``select_epoch``
    chose one on the validation split (None: the last epoch's).
    """

    history: list[dict[str, Any]]
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0
    best_epoch: int | None = None

    @property
    def final(self) -> dict[str, Any]:
        """The metrics of the epoch whose weights the model holds (the selected one, or the last)."""
        if not self.history:
            return {}
        return self.history[self.best_epoch - 1] if self.best_epoch else self.history[-1]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step multiplier of the base lr: constant, cosine to 0, or step decay by epochs."""
    total = config.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        if config.schedule == "step":
            return config.lr_gamma ** ((step // steps_per_epoch) // config.lr_step_epochs)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class _Run:
    """What the epochs of one :func:`train` call share (built once by :func:`_prepare`)."""

    model: nn.Module
    x_train: torch.Tensor  # (N, C, H, W) on the device
    y_train: torch.Tensor  # (N,)
    config: TrainConfig
    device: torch.device
    gen: torch.Generator  # the data order: one randperm per epoch
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    objective: Objective
    penalty: Penalty
    callbacks: list[Callback]
    state: TrainState
    selector: EpochSelector | None
    test_data: Data | None


def train(
    model: nn.Module,
    train_data: Data,
    test_data: Data | None,
    config: TrainConfig | None = None,
    callbacks: Sequence[Callback] = (),
    objective: Objective | None = None,
    val_data: Data | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train_data`` = (x (N, C, H, W) in [0, 1], y (N,)).

    ``config.method`` shapes the run through its hooks (``rankrobust.methods.base``): it may
    re-parametrize the model (before the optimizer is built), supplies the objective, loss terms
    (their epoch means logged as ``penalty_<name>``, their sum as ``penalty``), prox steps after
    each optimizer step, and final steps after the last epoch. Structure tracking (when
    ``config.track_structure``) runs before any extra ``callbacks``. An explicit ``objective``
    replaces the method's. Raises TrainingDivergedError on a NaN/inf loss.

    With ``val_data`` every epoch's metrics gain ``val_loss`` and ``val_acc`` (and
    ``val_robust_acc`` when ``config.select_epoch`` selects on it); with ``select_epoch`` ≠
    "last" the weights of the best epoch on that metric are restored after the last epoch,
    before the method's final steps (:mod:`rankrobust.training.selection`). ``test_data`` only
    gives the per-epoch test curve: selection never reads it.
    """
    config = config or TrainConfig()
    run = _prepare(model, train_data, test_data, config, callbacks, objective, val_data)
    start = time.perf_counter()
    for cb in run.callbacks:
        cb.on_train_begin(run.state)
    bar = tqdm(
        total=config.epochs * run.state.steps_per_epoch, disable=not config.progress,
        unit="step", dynamic_ncols=True, leave=False,
    )
    try:
        for epoch in range(config.epochs):
            _epoch(run, epoch, bar)
        best = run.selector.restore(model) if run.selector is not None else None
        for final in run.penalty.final_steps:
            final()
        for cb in run.callbacks:
            cb.on_train_end(run.state)
    finally:
        bar.close()
        model.eval()
    return TrainResult(run.state.history, run.state.records, time.perf_counter() - start, best)


def _prepare(model: nn.Module, train_data: Data, test_data: Data | None, config: TrainConfig,
             callbacks: Sequence[Callback], objective: Objective | None, val_data: Data | None
             ) -> _Run:
    """Seed, move model and data to the device, apply the method's hooks (check, parametrize,
    then the optimizer and schedule over the parameters that result, objective, penalty)."""
    device = resolve_device(config.device)
    gen = seed_everything(config.seed)
    model.to(device)
    x_train, y_train = train_data[0].to(device), train_data[1].to(device)
    if len(x_train) == 0:
        raise DataError("empty training set")
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    method = config.method
    method.check_model(model)  # a method that would change nothing is an error
    method.parametrize(model)
    optimizer = make_optimizer(model, config)
    schedule = make_schedule(optimizer, config, steps_per_epoch)
    objective = objective or method.objective(config.seed)
    penalty = method.regularize(model)
    all_callbacks = [*([StructureTracker()] if config.track_structure else []), *callbacks]
    state = TrainState(model, optimizer, config, device, steps_per_epoch=steps_per_epoch)
    return _Run(model, x_train, y_train, config, device, gen, optimizer, schedule, objective,
                penalty, all_callbacks, state, make_selector(config, val_data), test_data)


def _epoch(run: _Run, epoch: int, bar: Any) -> None:
    """One epoch: its steps, the divergence check, its metrics (test curve, validation, time,
    per-term penalties) passed to the callbacks and appended to the history."""
    state, config, n = run.state, run.config, len(run.x_train)
    state.epoch = epoch
    epoch_start = time.perf_counter()
    for cb in run.callbacks:
        cb.on_epoch_begin(state)
    run.model.train()
    loss_sum, pen_sum, term_sums, correct = _steps(run, bar)
    train_loss = float(loss_sum) / n
    if not math.isfinite(train_loss) or not math.isfinite(float(pen_sum)):
        raise TrainingDivergedError(
            f"training diverged in epoch {epoch + 1}: loss is {train_loss} (try a smaller lr)"
        )
    metrics: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": state.lr,
        "train_loss": train_loss,
        "penalty": float(pen_sum) / state.steps_per_epoch,
        "train_acc": float(correct) / n,
    }
    if run.test_data is not None:
        metrics["test_loss"], metrics["test_acc"] = evaluate(
            run.model, run.test_data[0], run.test_data[1], config.eval_batch_size
        )
    if run.selector is not None:
        metrics.update(run.selector.observe(run.model, epoch + 1))
    metrics["epoch_seconds"] = time.perf_counter() - epoch_start
    for name, value in term_sums.items():
        metrics[f"penalty_{name}"] = float(value) / state.steps_per_epoch
    for cb in run.callbacks:
        cb.on_epoch_end(state, metrics)
    state.history.append(metrics)
    shown = {"epoch": f"{epoch + 1}/{config.epochs}", "loss": f"{train_loss:.3f}"}
    if "test_acc" in metrics:
        shown["test_acc"] = f"{metrics['test_acc']:.3f}"
    bar.set_postfix(shown)


def _steps(run: _Run, bar: Any
           ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor | float], torch.Tensor]:
    """One pass over the shuffled training data, one optimizer step per batch: objective plus
    loss terms, backward, step, schedule, prox steps, callbacks. Returns the epoch's sums, kept
    on the device (no sync per step): Σ batch loss × batch size, Σ penalty, Σ per term, and the
    number of correct training predictions."""
    state, config, device = run.state, run.config, run.device
    n = len(run.x_train)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    pen_sum = torch.zeros((), device=device, dtype=torch.float64)
    term_sums: dict[str, torch.Tensor | float] = dict.fromkeys(run.penalty.loss_terms, 0.0)
    correct = torch.zeros((), device=device, dtype=torch.long)
    perm = torch.randperm(n, generator=run.gen).to(device)
    for i in range(0, n, config.batch_size):
        idx = perm[i : i + config.batch_size]
        xb, yb = run.x_train[idx], run.y_train[idx]
        loss, logits = run.objective(run.model, xb, yb, state)
        total = loss
        for name, term in run.penalty.loss_terms.items():
            pen = term(state)
            total = total + pen
            pen_sum += pen.detach().double()
            term_sums[name] = term_sums[name] + pen.detach().double()
        run.optimizer.zero_grad(set_to_none=True)
        total.backward()
        lr = state.lr  # the lr of this step (the schedule moves on below)
        run.optimizer.step()
        run.schedule.step()
        state.step += 1
        for prox in run.penalty.prox_steps:
            prox(state.step, lr)
        for cb in run.callbacks:
            cb.on_after_step(state)
        loss_sum += loss.detach().double() * len(idx)
        correct += (logits.detach().argmax(1) == yb).sum()
        bar.update(1)
    return loss_sum, pen_sum, term_sums, correct


def make_selector(config: TrainConfig, val_data: Data | None) -> EpochSelector | None:
    """The per-epoch validation of a run (None without validation data)."""
    if val_data is None:
        if config.select_epoch != "last":
            raise DataError(f"select_epoch {config.select_epoch!r} needs validation data")
        return None
    key = None if config.select_epoch == "last" else config.select_epoch
    robust = config.robust_eps if key == "val_robust_acc" else None
    return EpochSelector(val_data, key, robust, config.val_attack_steps, config.val_attack_n,
                         config.eval_batch_size)
