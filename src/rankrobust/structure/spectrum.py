"""Singular values (and right singular vectors) from Gram-matrix eigendecompositions.

For W ∈ ℝ^{m×n} and k = min(m, n), let A be W oriented tall: A = W if m ≥ n, else Wᵀ
(A ∈ ℝ^{l×k}, l ≥ k). The k×k Gram matrix

    G = AᵀA = V diag(σ²) Vᵀ

has eigenvalues λ_i = σ_i², so σ_i = √max(λ_i, 0), and its eigenvectors V are the right singular
vectors of A. A k×k symmetric eigenproblem plus one matmul is several times cheaper than an SVD of
W. :func:`gram_eigh` is the one routine that does this, for the measurements here
(:func:`singular_values_many`) and for the nuclear-norm proximal steps in
``rankrobust.regularizers.nuclear``.

Precision, one rule (:func:`gram_dtype`): G is formed and decomposed in float64 when its side k is
at most ``float64_max_side`` (no limit by default), otherwise in the input's own dtype. Forming G
squares the condition number: in float32 the eigenvalues carry an absolute error ≈ ε₃₂·σ₁² ≈
1e-7·σ₁², so every σ_i below ≈ 3e-4·σ₁ is lost — exactly the tail of a trained, nearly low-rank
matrix. In float64 (absolute error ≈ 1e-16·σ₁²) σ is resolved down to ≈ 1e-8·σ₁, which
``benchmarks/bench_structure.py`` checks against a float64 SVD. Measurements therefore always use
float64; the nuclear prox, run every few training steps, caps it at side
:data:`FLOAT64_MAX_SIDE` (a threshold τ above ≈ 1e-3·σ₁ does not need the tail).

``singular_values_many``: ``method="svd"`` is the reference, float64 ``torch.linalg.svdvals``;
``method="gram32"`` forms G in float32 (fast but lossy, kept for the benchmark's comparison).
``method="gram"`` on CPU is :func:`gram_singular_values_cpu`: W converted to float64 once, G of the
smaller side k = min(m, n) formed by one BLAS ``dsyrk`` (a symmetric rank-l update: one triangle,
half the flops of the GEMM AᵀA) straight from W's memory without a transposed copy, and LAPACK's
``dsyevd`` (eigenvalues only) on that triangle, single-threaded (:func:`blas_threads`). Elsewhere (CUDA) matrices of equal shape are stacked and multiplied in
one batched call on their own device and the eigenvalue step is batched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, Literal, overload

import numpy as np
import torch

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError

SpectrumMethod = Literal["gram", "svd", "gram32"]
METHODS: tuple[str, ...] = ("gram", "svd", "gram32")
FLOAT64_MAX_SIDE = 256  # the nuclear prox's cap: float64 Gram matrices up to 256×256


def gram_dtype(side: int, dtype: torch.dtype, float64_max_side: int | None = None) -> torch.dtype:
    """The one precision rule: float64 if the Gram side k ≤ ``float64_max_side`` (None: any k),
    else the input's ``dtype``."""
    return torch.float64 if float64_max_side is None or side <= float64_max_side else dtype


def _eigh_per_matrix(gram: torch.Tensor, vectors: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ascending eigenvalues (..., k) [and eigenvectors (..., k, k)] of symmetric (..., k, k)."""
    if gram.ndim == 2 or gram.is_cuda:  # one call; batched cuSOLVER on CUDA
        if vectors:
            evals, vecs = torch.linalg.eigh(gram)
            return evals, vecs
        return torch.linalg.eigvalsh(gram), None
    # CPU batch: one LAPACK call per matrix; batched eigvalsh is ~50x slower (torch 2.13)
    flat = gram.reshape(-1, *gram.shape[-2:])  # (B, k, k)
    if vectors:
        pairs = [torch.linalg.eigh(g) for g in flat]
        evals = torch.stack([p[0] for p in pairs]).reshape(gram.shape[:-1])
        return evals, torch.stack([p[1] for p in pairs]).reshape(gram.shape)
    return torch.stack([torch.linalg.eigvalsh(g) for g in flat]).reshape(gram.shape[:-1]), None


@overload
def gram_eigh(
    matrix: torch.Tensor, *, vectors: Literal[True], float64_max_side: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


@overload
def gram_eigh(
    matrix: torch.Tensor, *, vectors: Literal[False] = False, float64_max_side: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, None]: ...


def gram_eigh(
    matrix: torch.Tensor, *, vectors: bool = False, float64_max_side: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(A, σ, V) of W (..., m, n) from the eigendecomposition of G = AᵀA (..., k, k); no gradient.

    A (..., l, k) is W oriented tall (Wᵀ when m < n), in the compute dtype of :func:`gram_dtype`;
    σ (..., k) the singular values in descending order, in that dtype; V (..., k, k) the right
    singular vectors of A, column i paired with σ_i (None unless ``vectors``). Over the non-zero
    σ, A V diag(1/σ) = U, so U Vᵀ (the polar factor) and U diag(f(σ)) Vᵀ (SVT) are products only.
    """
    w = matrix.detach()
    a = w if w.shape[-2] >= w.shape[-1] else w.mT  # (..., l, k), l ≥ k
    a = a.to(gram_dtype(a.shape[-1], a.dtype, float64_max_side))
    evals, vecs = _eigh_per_matrix(a.mT @ a, vectors)  # G = AᵀA (..., k, k); ascending
    sigma = evals.flip(-1).clamp_min(0).sqrt()
    return a, sigma, None if vecs is None else vecs.flip(-1)


_BLAS: dict[str, Any] = {}  # lazily: scipy's dsyrk and a threadpoolctl controller (None if absent)


def _scipy_blas() -> tuple[Any, Any]:
    """(scipy.linalg.blas.dsyrk, a cached threadpoolctl controller or None), imported once."""
    if not _BLAS:
        from scipy.linalg.blas import dsyrk  # heavy import, needed only for CPU measurements

        try:  # ships with scikit-learn (a dependency through mlxtend); optional here
            from threadpoolctl import ThreadpoolController

            controller: Any = ThreadpoolController()  # after scipy: it sees scipy's OpenBLAS too
        except Exception:  # pragma: no cover - threadpoolctl missing or broken
            controller = None
        _BLAS.update(dsyrk=dsyrk, controller=controller)
    return _BLAS["dsyrk"], _BLAS["controller"]


@contextmanager
def blas_threads() -> Iterator[None]:
    """Run numpy's and scipy's BLAS/LAPACK single-threaded for the block.

    OpenBLAS otherwise starts one thread per core whatever torch was told, and its threads fight
    torch's OpenMP workers, which spin between parallel regions: on 2 cores, ResNet-18-shaped
    ``analyze`` took 0.89 s with 2 torch + 2 BLAS threads and 0.30 s with BLAS capped at 1
    (0.29 s with 1 torch thread); a sweep worker limited to one torch thread would
    oversubscribe the machine the same way.
    """
    _, controller = _scipy_blas()
    limit = nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")
    with limit:
        yield


def gram_singular_values_cpu(matrix: torch.Tensor) -> torch.Tensor:
    """Descending float64 σ (k,) of one CPU matrix W (m, n), k = min(m, n) ≥ 1, via float64 G.

    X = W in float64 (one numpy conversion in W's memory order, which reuses freed heap pages
    instead of faulting in fresh ones as torch's large allocations do; a float64 W is used in
    place). With X stored row-major, Xᵀ is column-major with no copy, so BLAS ``dsyrk`` forms the
    k×k Gram matrix of the smaller side, G = X Xᵀ (m ≤ n) or XᵀX, as the upper triangle only
    (k²·max(m, n) flops, half a GEMM's). Its eigenvalues λ come from LAPACK ``dsyevd`` on that
    triangle (numpy's ``eigvalsh``, values only), and σ_i = √max(λ_i, 0), descending. Run it
    under :func:`blas_threads`. No gradient; the result is a fresh CPU tensor.
    """
    dsyrk, _ = _scipy_blas()
    w = matrix.detach()
    if w.dtype not in (torch.float32, torch.float64):  # half types: numpy has no bfloat16
        w = w.to(torch.float64)
    x = w.numpy().astype(np.float64, order="K", copy=False)
    m, n = x.shape
    if x.flags.f_contiguous and not x.flags.c_contiguous:  # X column-major: dsyrk reads it as is
        gram = dsyrk(1.0, x, trans=0 if m <= n else 1)  # trans=0: X Xᵀ; trans=1: XᵀX
    else:  # X row-major: Xᵀ (n, m) is column-major, the same memory
        gram = dsyrk(1.0, np.ascontiguousarray(x).T, trans=1 if m <= n else 0)
    evals = np.linalg.eigvalsh(gram, UPLO="U")  # ascending; reads the upper triangle only
    return torch.from_numpy(evals[::-1].copy()).clamp_min_(0).sqrt_()


def _batch_singular_values(stack: torch.Tensor, method: str) -> torch.Tensor:
    """(B, m, n) → (B, min(m, n)) descending singular values, float64."""
    if method == "svd":
        return torch.linalg.svdvals(stack.to(torch.float64))
    if method == "gram32":  # float32 throughout: no side gets float64
        return gram_eigh(stack.to(torch.float32), float64_max_side=0)[1].to(torch.float64)
    return gram_eigh(stack)[1]


def singular_values_many(
    matrices: Sequence[torch.Tensor], method: SpectrumMethod | str = "gram"
) -> list[torch.Tensor]:
    """Descending float64 singular values (min(m, n),) of each 2-D matrix, in input order.

    Matrices of one shape and device share a batched call; results stay on each input's device.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown spectrum method {method!r}{closest(method, list(METHODS))}; "
                          f"expected one of {', '.join(METHODS)}")
    groups: dict[tuple[tuple[int, ...], torch.device], list[int]] = defaultdict(list)
    for i, m in enumerate(matrices):
        if m.ndim != 2:
            raise ConfigError(f"expected 2-D matrices, got shape {tuple(m.shape)}")
        groups[(tuple(m.shape), m.device)].append(i)
    result: list[torch.Tensor | None] = [None] * len(matrices)
    cpu_gram = method == "gram" and any(dev.type == "cpu" and min(shape) for shape, dev in groups)
    with torch.no_grad(), blas_threads() if cpu_gram else nullcontext():
        for (shape, device), idx in groups.items():
            if min(shape) == 0:
                for i in idx:
                    result[i] = torch.zeros(0, dtype=torch.float64, device=matrices[i].device)
            elif method == "gram" and device.type == "cpu":  # one dsyrk + dsyevd per matrix
                for i in idx:
                    result[i] = gram_singular_values_cpu(matrices[i])
            else:
                sigma = _batch_singular_values(torch.stack([matrices[i].detach() for i in idx]), method)
                for row, i in enumerate(idx):
                    result[i] = sigma[row]
    return [r for r in result if r is not None]


def pad_spectra(spectra: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack 1-D spectra of different lengths into (L, max length), zero-padded (on one device)."""
    if not spectra:
        return torch.zeros(0, 0, dtype=torch.float64)
    return torch.nn.utils.rnn.pad_sequence(list(spectra), batch_first=True)
