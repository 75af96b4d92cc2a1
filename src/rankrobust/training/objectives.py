"""Training objectives: map (model, x, y) to (loss to minimize, logits for train accuracy)."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.training.callbacks import TrainState


class Objective(Protocol):
    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def natural_objective(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState
) -> tuple[torch.Tensor, torch.Tensor]:
    """Natural training: mean cross-entropy L(x, y) on the clean batch."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits
