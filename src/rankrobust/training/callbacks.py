"""Callback hooks of the training loop, and the state they see.

Order within one step (the method's hooks are in ``rankrobust.methods``)::

    loss, logits = objective(model, x, y, state)           # the method's objective
    total = loss + Σ term(state)                           # the method's loss terms
    total.backward(); optimizer.step()
    prox(step, lr) for the method's prox steps; callback.on_after_step(state)

and ``on_epoch_end(state, metrics)`` may add entries to the epoch's metrics or append rows to
``state.records[name]`` (stored with the run's history), e.g. per-layer structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rankrobust.training.config import TrainConfig


@dataclass
class TrainState:
    """What callbacks and method hooks see: the live model and optimizer, and where the loop stands."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    epoch: int = 0  # 0-based index of the running epoch
    step: int = 0  # optimizer steps taken so far
    steps_per_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def progress(self) -> float:
        """Training progress in epochs, fractional (step / steps_per_epoch)."""
        return self.step / max(self.steps_per_epoch, 1)


class Callback:
    """Base class with no-op hooks for observers (structure tracking, logging); override any."""

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before the first epoch (after the model is on its device)."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Called at the start of each epoch."""

    def on_after_step(self, state: TrainState) -> None:
        """The optimizer (and the method's prox steps) have stepped."""

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        """Metrics of the finished epoch (after evaluation); may add entries to ``metrics``."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once after the last epoch (after the method's final steps)."""
