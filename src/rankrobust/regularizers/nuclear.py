"""Nuclear norm (low rank): ‖W‖_* = Σᵢ σᵢ(W), its subgradient U Vᵀ and its proximal operator.

For W ∈ ℝ^{m×n} with reduced SVD W = U diag(σ) Vᵀ:

* subgradient: ∂‖W‖_* ∋ U Vᵀ, the orthogonal polar factor of W (exact where W has full rank);
* prox of τ‖·‖_* (singular value thresholding, Cai, Candès & Shen 2010):
  SVT_τ(W) = U diag(max(σ − τ, 0)) Vᵀ, exactly of rank #{σᵢ > τ}.

Two methods compute them. ``"exact"`` uses LAPACK's SVD. ``"fast"`` uses the eigendecomposition
of the smaller Gram matrix: for tall W (m ≥ n; wide W is transposed), WᵀW = V diag(σ²) Vᵀ, and

    U Vᵀ = W V_r diag(1/σ_r) V_rᵀ,      SVT_τ(W) = W V_k diag(1 − τ/σ_k) V_kᵀ,

over the r numerically non-zero (k above-threshold) singular values only, so the products are
thin when W is (becoming) low rank. ``eigh`` of an n×n matrix is 2–3× cheaper than an SVD on CPU.
The decomposition is :func:`rankrobust.structure.spectrum.gram_eigh`, under its one precision
rule: squaring the spectrum resolves singular values only down to ~√ε·σ₁ of the compute dtype, so
G is float64 for matrices whose smaller side is ≤ ``FLOAT64_MAX_SIDE`` = 256 (cheap) and in the
weight's dtype above; thresholds τ above ~1e-3·σ₁ are unaffected.

Newton–Schulz iterations (X ← 1.5X − 0.5XXᵀX) also give U Vᵀ with products only, but each costs
two n³ products and an ill-conditioned W needs 10–20 of them: more than one ``eigh`` on a CPU.
The training callbacks therefore amortize one Gram decomposition over several steps instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch

from rankrobust.structure.spectrum import FLOAT64_MAX_SIDE, gram_eigh

Method = Literal["exact", "fast"]


def nuclear_norm(matrix: torch.Tensor) -> torch.Tensor:
    """‖W‖_* = Σ σᵢ(W) for a (m, n) matrix; differentiable (gradient U Vᵀ)."""
    return torch.linalg.svdvals(matrix).sum()


def nuclear_penalty(matrices: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σ_W ‖W‖_* over (m, n) matrices, differentiable."""
    terms = [nuclear_norm(m) for m in matrices]
    if not terms:
        raise ValueError("nuclear_penalty needs at least one matrix")
    return torch.stack(terms).sum()


def _restore(result: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """A result computed on W oriented tall, back in W's orientation (m, n) and dtype."""
    if matrix.shape[0] < matrix.shape[1]:
        result = result.T
    return result.to(matrix.dtype).contiguous()


def _numerical_rank_mask(sigma: torch.Tensor, rows: int) -> torch.Tensor:
    """σ_i > 10·σ₁·√(rows·ε): the singular values the Gram route resolves (ε of σ's dtype)."""
    eps = torch.finfo(sigma.dtype).eps
    cutoff = sigma[:1].clamp_min(torch.finfo(sigma.dtype).tiny) * 10 * (rows * eps) ** 0.5
    return sigma > cutoff


def polar_factor_with_norm(
    matrix: torch.Tensor, method: Method = "exact", smoothing: float = 0.0
) -> tuple[torch.Tensor, float]:
    """(U diag(min(1, σ/c)) Vᵀ of the (m, n) matrix W, ‖W‖_*), no gradient tracking.

    With smoothing c = 0 this is the polar factor U Vᵀ. With c > 0 it is the gradient of the
    Moreau envelope of ‖·‖_* (Huber on each σ: σ²/2c below c, σ − c/2 above), i.e.
    (W − SVT_c(W)) / c: a step of size c along it cannot push a singular value through zero.

    ``exact``: all min(m, n) singular pairs (the gradient of ‖W‖_* where W has full rank).
    ``fast``: the pairs with σ above the numerical-rank cutoff (U_r V_rᵀ, also a subgradient).
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must be ≥ 0, got {smoothing}")
    with torch.no_grad():
        if method == "exact":
            u, s, vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
            if smoothing > 0:
                u = u * (s / s.clamp_min(smoothing))
            return u @ vh, float(s.sum())
        w, sigma, v = gram_eigh(matrix, vectors=True, float64_max_side=FLOAT64_MAX_SIDE)
        keep = _numerical_rank_mask(sigma, w.shape[0])
        vk = v[:, keep]
        q = ((w @ vk) / sigma[keep].clamp_min(smoothing)) @ vk.T
        return _restore(q, matrix), float(sigma.sum())


def polar_factor(matrix: torch.Tensor, method: Method = "exact") -> torch.Tensor:
    """U Vᵀ, the orthogonal polar factor of the (m, n) matrix W (a subgradient of ‖W‖_*)."""
    return polar_factor_with_norm(matrix, method)[0]


def singular_value_threshold_with_norm(
    matrix: torch.Tensor, tau: float, method: Method = "exact"
) -> tuple[torch.Tensor, float]:
    """(SVT_τ(W) = U diag(max(σ − τ, 0)) Vᵀ, its nuclear norm Σ max(σ − τ, 0)); τ ≥ 0."""
    if tau < 0:
        raise ValueError(f"tau must be ≥ 0, got {tau}")
    with torch.no_grad():
        if method == "exact":
            u, s, vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
            shrunk = (s - tau).clamp_min(0)
            keep = shrunk > 0
            out = (u[:, keep] * shrunk[keep]) @ vh[keep]
            return out.to(matrix.dtype), float(shrunk.sum())
        w, sigma, v = gram_eigh(matrix, vectors=True, float64_max_side=FLOAT64_MAX_SIDE)
        keep = sigma > tau
        factor = 1 - tau / sigma[keep]  # (k,)  σ·(1 − τ/σ) = σ − τ
        vk = v[:, keep]
        out = ((w @ vk) * factor) @ vk.T
        return _restore(out, matrix), float((sigma[keep] - tau).sum())


def singular_value_threshold(
    matrix: torch.Tensor, tau: float, method: Method = "exact"
) -> torch.Tensor:
    """SVT_τ(W) = U diag(max(σ − τ, 0)) Vᵀ, the prox of τ‖·‖_*: exactly of rank #{σ > τ}."""
    return singular_value_threshold_with_norm(matrix, tau, method)[0]
