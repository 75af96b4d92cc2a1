"""Clean evaluation: mean cross-entropy and accuracy in batches, in eval mode."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.base import predict

__all__ = ["evaluate", "predict"]  # predict: the one batched predict, re-exported


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy in [0, 1]) of ``model`` on (x, y)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            logits = model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
            correct += (logits.argmax(1) == yb).sum()
    finally:
        model.train(was_training)
    n = max(len(x), 1)
    return float(loss_sum) / n, float(correct) / n
