"""Singular values of many matrices at once, fast: eigenvalues of float64 Gram matrices.

For W ∈ ℝ^{m×n} with k = min(m, n), the k×k Gram matrix G = W Wᵀ (m ≤ n) or Wᵀ W (m > n) has
eigenvalues λ_i = σ_i², so σ_i = √max(λ_i, 0). A k×k symmetric eigenproblem plus one matmul is
several times cheaper than an SVD of W. Forming G squares the condition number: in float32 the
eigenvalues carry an absolute error ≈ ε₃₂·σ₁² ≈ 1e-7·σ₁², so every σ_i below ≈ 3e-4·σ₁ is lost —
exactly the tail of a trained, nearly low-rank matrix. The Gram matrix is therefore formed and
decomposed in float64 (absolute error ≈ 1e-16·σ₁², σ resolved down to ≈ 1e-8·σ₁), which
``benchmarks/bench_structure.py`` checks against a float64 SVD. ``method="svd"`` is the
reference: float64 ``torch.linalg.svdvals``; ``method="gram32"`` is the fast but lossy variant,
kept for the benchmark's comparison.

Matrices of equal shape are stacked and multiplied in one batched call, on their own device; the
eigenvalue step is batched on CUDA and one LAPACK call per matrix on CPU (faster there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import torch

from rankrobust.errors import ConfigError

SpectrumMethod = Literal["gram", "svd", "gram32"]
METHODS: tuple[str, ...] = ("gram", "svd", "gram32")


def _batch_singular_values(stack: torch.Tensor, method: str) -> torch.Tensor:
    """(B, m, n) → (B, min(m, n)) descending singular values, float64."""
    if method == "svd":
        return torch.linalg.svdvals(stack.to(torch.float64))
    a = stack if stack.shape[-2] <= stack.shape[-1] else stack.transpose(-2, -1)  # (B, k, l), k ≤ l
    a = a.to(torch.float32 if method == "gram32" else torch.float64)
    gram = a @ a.transpose(-2, -1)  # (B, k, k) = W Wᵀ, eigenvalues σ²
    if gram.is_cuda:
        eig = torch.linalg.eigvalsh(gram)  # ascending; batched cuSOLVER
    else:  # CPU: batched eigvalsh is ~50x slower than one LAPACK call per matrix (torch 2.13)
        eig = torch.stack([torch.linalg.eigvalsh(g) for g in gram])
    eig = eig.to(torch.float64)
    return eig.clamp_min(0).sqrt().flip(-1)


def singular_values_many(
    matrices: Sequence[torch.Tensor], method: SpectrumMethod | str = "gram"
) -> list[torch.Tensor]:
    """Descending float64 singular values (min(m, n),) of each 2-D matrix, in input order.

    Matrices of one shape and device share a batched call; results stay on each input's device.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown spectrum method {method!r}; expected one of {', '.join(METHODS)}")
    groups: dict[tuple[tuple[int, ...], torch.device], list[int]] = defaultdict(list)
    for i, m in enumerate(matrices):
        if m.ndim != 2:
            raise ConfigError(f"expected 2-D matrices, got shape {tuple(m.shape)}")
        groups[(tuple(m.shape), m.device)].append(i)
    result: list[torch.Tensor | None] = [None] * len(matrices)
    with torch.no_grad():
        for (shape, _), idx in groups.items():
            if min(shape) == 0:
                for i in idx:
                    result[i] = torch.zeros(0, dtype=torch.float64, device=matrices[i].device)
                continue
            sigma = _batch_singular_values(torch.stack([matrices[i].detach() for i in idx]), method)
            for row, i in enumerate(idx):
                result[i] = sigma[row]
    return [r for r in result if r is not None]


def pad_spectra(spectra: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack 1-D spectra of different lengths into (L, max length), zero-padded (on one device)."""
    if not spectra:
        return torch.zeros(0, 0, dtype=torch.float64)
    return torch.nn.utils.rnn.pad_sequence(list(spectra), batch_first=True)
