"""Structure metrics of one weight tensor: pure functions, tensor (or numpy array) in, float out.

Notation: W ∈ ℝ^{m×n} with singular values σ₁ ≥ … ≥ σ_k ≥ 0, k = min(m, n). A tensor with more
than two dimensions (a conv kernel (out, in, kh, kw)) is read as the matrix (out, in·kh·kw).

Effective rank and effective sparsity are *Hill numbers*: the exponential of the Rényi entropy
of order α of a probability vector p,

    D_α(p) = exp(H_α(p)),  H_α(p) = log(Σ_i p_i^α) / (1 − α)      (α ≠ 1)
    D_1(p) = exp(−Σ_i p_i log p_i)                                (Shannon; Roy & Vetterli 2007)
    D_2(p) = 1 / Σ_i p_i²,  D_∞(p) = 1 / max_i p_i,  D_0(p) = #{i : p_i > n·ε·max p}

with p = σ / Σσ (effective rank) or p = |w| / Σ|w| over all entries (effective sparsity). D_α
equals k when p has k equal non-zero entries, lies in [1, #non-zeros], falls as α grows, and is
unchanged by scaling W. Convention: an all-zero tensor has no distribution p; its effective rank,
effective sparsity, stable rank and numerical rank are defined as 0 (the rank of a zero matrix).

Single tensors are computed in float64 with ``torch.linalg.svdvals`` on the tensor's device.
``hill_numbers`` is the batched core that :func:`rankrobust.structure.analyze` also uses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rankrobust.errors import ConfigError

ArrayLike = torch.Tensor | np.ndarray


def as_tensor(value: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A detached real tensor of ``dtype`` from a torch tensor or numpy array (same device)."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ConfigError(f"expected a torch tensor or numpy array, got {type(value).__name__}")
    if value.is_complex():
        raise ConfigError("complex tensors are not supported")
    return value.detach().to(dtype)


def as_matrix(value: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(m, n) from a 2-D tensor; (out, in, k…) kernels are reshaped to (out, in·k…)."""
    t = as_tensor(value, dtype)
    if t.ndim < 2:
        raise ConfigError(f"expected a matrix (2-D or a conv kernel), got shape {tuple(t.shape)}")
    return t.reshape(t.shape[0], -1)


def check_order(order: float) -> float:
    """Validate a Rényi order α ∈ [0, ∞] (``math.inf`` allowed)."""
    order = float(order)
    if math.isnan(order) or order < 0:
        raise ConfigError(f"the Rényi order must be in [0, inf], got {order}")
    return order


def hill_numbers(weights: torch.Tensor, order: float = 1.0) -> torch.Tensor:
    """D_α of p = w / Σw along the last dim of non-negative ``weights`` (..., n) → (...).

    Zero padding is harmless (0·log 0 = 0), so spectra of different lengths can share one padded
    tensor. Rows that sum to 0 give 0 (the zero-tensor convention). Same dtype as ``weights``.
    """
    order = check_order(order)
    total = weights.sum(-1, keepdim=True)
    nonzero = total.squeeze(-1) > 0
    p = weights / torch.where(total > 0, total, torch.ones_like(total))  # (..., n)
    if order == 0:
        # numerical support: p_i above n·ε·max p (roundoff-level σ are not counted; numpy's rule)
        floor = p.shape[-1] * torch.finfo(p.dtype).eps * p.amax(-1, keepdim=True) if p.shape[-1] else 0
        value = (p > floor).sum(-1).to(weights.dtype)
    elif order == 1:
        value = torch.exp(-torch.special.xlogy(p, p).sum(-1))
    elif math.isinf(order):
        value = 1.0 / p.amax(-1).clamp_min(torch.finfo(p.dtype).tiny)
    elif order == 2:
        value = 1.0 / p.square().sum(-1).clamp_min(torch.finfo(p.dtype).tiny)
    else:
        log_p = torch.log(p)  # −inf where p = 0, and exp(α·(−inf)) = 0 for α > 0
        value = torch.exp(torch.logsumexp(order * log_p, -1) / (1.0 - order))
    return torch.where(nonzero, value, torch.zeros_like(value))


def singular_values(matrix: ArrayLike) -> torch.Tensor:
    """σ₁ ≥ … ≥ σ_k of ``matrix`` (float64 ``svdvals``), shape (min(m, n),)."""
    return torch.linalg.svdvals(as_matrix(matrix))


def effective_rank(matrix: ArrayLike, order: float = 1.0) -> float:
    """D_α(σ / Σσ): exp of the Rényi entropy of the normalized singular values.

    Order 1 is Roy & Vetterli's (2007) effective rank exp(−Σ p log p); order 2 is (Σσ)²/Σσ²;
    order ∞ is Σσ / σ₁. In [1, rank W] for W ≠ 0; 0 for W = 0.
    """
    return float(hill_numbers(singular_values(matrix), order))


def effective_sparsity(tensor: ArrayLike, order: float = 1.0) -> float:
    """D_α(|w| / Σ|w|) over all entries: k equal non-zeros among n entries give k; 0 for W = 0."""
    t = as_tensor(tensor)
    return float(hill_numbers(t.abs().reshape(-1), order))


def stable_rank(matrix: ArrayLike) -> float:
    """‖W‖_F² / ‖W‖₂² = Σσ² / σ₁² ∈ [1, rank W]; 0 for W = 0."""
    w = as_matrix(matrix)
    top = spectral_norm(w)
    return float(w.square().sum()) / top**2 if top > 0 else 0.0


def numerical_rank(matrix: ArrayLike, rtol: float | None = None) -> int:
    """#{i : σ_i > rtol·σ₁}; default rtol = max(m, n)·ε of the input's dtype (numpy's rule)."""
    w = as_matrix(matrix)
    if rtol is None:
        source = torch.from_numpy(np.empty(0, matrix.dtype)) if isinstance(matrix, np.ndarray) else matrix
        dtype = source.dtype if source.is_floating_point() else torch.float64
        rtol = max(w.shape) * torch.finfo(dtype).eps
    if rtol < 0:
        raise ConfigError(f"rtol must be ≥ 0, got {rtol}")
    s = torch.linalg.svdvals(w)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0
    return int((s > rtol * s[0]).sum())


def nuclear_norm(matrix: ArrayLike) -> float:
    """‖W‖_* = Σσ_i (trace norm)."""
    return float(singular_values(matrix).sum())


def spectral_norm(matrix: ArrayLike) -> float:
    """‖W‖₂ = σ₁ (largest singular value); 0 for an empty matrix."""
    s = singular_values(matrix)
    return float(s[0]) if s.numel() else 0.0


def frobenius_norm(tensor: ArrayLike) -> float:
    """‖W‖_F = (Σ w²)^{1/2} = (Σσ²)^{1/2}."""
    return float(torch.linalg.vector_norm(as_tensor(tensor)))


def l1_norm(tensor: ArrayLike) -> float:
    """‖W‖₁ = Σ|w| over all entries (the entry-wise norm, not the induced one)."""
    return float(as_tensor(tensor).abs().sum())


def normalized_effective_rank(matrix: ArrayLike, order: float = 1.0) -> float:
    """effective_rank / min(m, n) ∈ (0, 1] (0 for W = 0), comparable across layer sizes."""
    m, n = as_matrix(matrix).shape
    return effective_rank(matrix, order) / min(m, n) if min(m, n) else 0.0


def normalized_effective_sparsity(tensor: ArrayLike, order: float = 1.0) -> float:
    """effective_sparsity / numel ∈ (0, 1] (0 for W = 0): the share of 'effectively used' entries."""
    numel = as_tensor(tensor).numel()
    return effective_sparsity(tensor, order) / numel if numel else 0.0
