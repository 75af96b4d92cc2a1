"""ℓ1 (sparsity): the penalty Σ‖W‖₁ = Σᵢⱼ |wᵢⱼ| and its proximal operator (soft-thresholding)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def l1_penalty(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σ_W ‖W‖₁ (sum of absolute entries), differentiable; the gradient is sign(W) (0 at 0)."""
    terms = [t.abs().sum() for t in tensors]
    if not terms:
        raise ValueError("l1_penalty needs at least one tensor")
    return torch.stack(terms).sum()


def soft_threshold(tensor: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """prox of τ‖·‖₁: sign(x)·max(|x| − τ, 0), elementwise, τ ≥ 0.

    Entries with |x| ≤ τ become exact zeros; the others move τ towards zero. Not in place.
    """
    if isinstance(tau, float | int) and tau < 0:
        raise ValueError(f"tau must be ≥ 0, got {tau}")
    return torch.sign(tensor) * torch.clamp(tensor.abs() - tau, min=0)


def soft_threshold_(tensor: torch.Tensor, tau: float) -> torch.Tensor:
    """In-place :func:`soft_threshold` (for parameters, under ``torch.no_grad()``)."""
    return tensor.copy_(soft_threshold(tensor, tau))
