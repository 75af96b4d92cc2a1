"""Truncated SVD of trained weights: how much of each layer's rank does the model need?

A weight read as W ∈ ℝ^{m×n} (a conv kernel (out, in, k…) as (out, in·k…), as everywhere in
rankrobust), with SVD W = U diag(σ) Vᵀ, σ₁ ≥ … ≥ σ_k ≥ 0, k = min(m, n), is replaced by

    W_r = Σ_{i≤r} σᵢ uᵢ vᵢᵀ,        ‖W − W_r‖_F² = Σ_{i>r} σᵢ²,   ‖W − W_r‖₂ = σ_{r+1},

its best rank-r approximation in both norms (Eckart–Young–Mirsky). A share ``keep`` ∈ (0, 1]
picks r by one of two rules:

    mode "rank":    r = ⌈keep·k⌉                                (a share of the rank)
    mode "energy":  r = min{ r : Σ_{i≤r} σᵢ² ≥ keep·Σ_{i≤k} σᵢ² }  (a share of ‖W‖_F²)

The SVD runs in float64 (``torch.linalg.svd``) on the weight's device and W_r is cast back to the
weight's dtype. When r = k (always for keep = 1) the weight is left untouched, bit for bit, and
no SVD is computed; an all-zero W is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.interventions.base import (
    check_keep,
    fresh_copy,
    select_layers,
    set_weight_matrix,
    share_count,
    weight_matrix,
)

TruncationMode = Literal["rank", "energy"]
MODES: tuple[str, ...] = ("rank", "energy")
_ENERGY_TOLERANCE = 1e-12  # cumulative shares Σσ²/Σσ² carry float64 roundoff ≈ k·1e-16


def check_mode(mode: str) -> str:
    """``mode`` if it is "rank" or "energy", else ConfigError."""
    if mode not in MODES:
        raise ConfigError(f"unknown truncation mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def energy_rank(sigma: torch.Tensor, keep: float) -> int:
    """min{ r ≥ 1 : Σ_{i≤r} σᵢ² ≥ keep·Σσᵢ² } for descending σ (k,); k for an all-zero σ."""
    energy = sigma.to(torch.float64).square()
    total = float(energy.sum())
    if total <= 0.0:
        return int(sigma.numel())
    share = energy.cumsum(0) / total  # (k,), non-decreasing, last entry ≈ 1
    reached = share >= keep - _ENERGY_TOLERANCE
    return int(reached.to(torch.int64).argmax()) + 1 if bool(reached.any()) else int(sigma.numel())


def truncate_matrix(matrix: torch.Tensor, keep: float, mode: TruncationMode | str = "rank") -> torch.Tensor:
    """W_r for the matrix W (m, n) by the rule of ``mode`` (see the module docstring).

    Returns ``matrix`` itself (the same tensor object) when r = k, otherwise a new tensor of
    W's shape and dtype.
    """
    keep = check_keep(keep)
    mode = check_mode(mode)
    if matrix.ndim != 2:
        raise ConfigError(f"expected a matrix (m, n), got shape {tuple(matrix.shape)}")
    k = min(matrix.shape)
    if keep == 1.0 or k == 0 or (mode == "rank" and share_count(keep, k) >= k):
        return matrix
    u, s, vh = torch.linalg.svd(matrix.detach().to(torch.float64), full_matrices=False)
    # u (m, k), s (k,), vh (k, n)
    r = share_count(keep, k) if mode == "rank" else energy_rank(s, keep)
    if r >= k:
        return matrix
    return ((u[:, :r] * s[:r]) @ vh[:r]).to(matrix.dtype)  # (m, r)·(r, n) → (m, n)


def truncate_svd(
    model: nn.Module,
    keep: float,
    *,
    mode: TruncationMode | str = "rank",
    layers: Sequence[str] | None = None,
) -> nn.Module:
    """A copy of ``model`` whose Linear/Conv weights are truncated to W_r (``model`` untouched).

    ``keep`` ∈ (0, 1] is the share of each layer's rank (mode "rank", r = ⌈keep·min(m, n)⌉) or
    of its squared Frobenius norm (mode "energy"); ``layers`` names the layers to truncate (paths
    as in :func:`rankrobust.structure.analyze`; None: all). keep = 1 returns an exact copy.
    Biases and every other parameter or buffer are copied unchanged.
    """
    keep = check_keep(keep)
    mode = check_mode(mode)
    out = fresh_copy(model)
    modules = select_layers(out, layers)
    if keep == 1.0:
        return out
    for module in modules.values():
        w = weight_matrix(module)
        truncated = truncate_matrix(w, keep, mode)
        if truncated is not w:
            set_weight_matrix(module, truncated)
    return out
