"""The one Gram-spectrum routine: exact answers, its precision rule, and bit-identity with the two
routines it replaced (kept below as oracles, verbatim but for names).

The nuclear-norm prox and polar factor feed committed training results, so their ``fast`` path must
give the same bits as before :func:`gram_eigh` existed. The measurement path on CPU is now BLAS
``dsyrk`` + LAPACK ``dsyevd`` (:func:`gram_singular_values_cpu`, issue 13) instead of torch's GEMM
and ``eigvalsh``: its σ² agree with the old path's, and with a float64 SVD's, to 1e-12·σ₁² (both
are float64 Gram spectra; only the last bits of the rounding differ).
"""

from __future__ import annotations

import pytest
import torch

from rankrobust.regularizers.nuclear import (
    polar_factor_with_norm,
    singular_value_threshold_with_norm,
)
from rankrobust.structure.spectrum import (
    FLOAT64_MAX_SIDE,
    gram_dtype,
    gram_eigh,
    gram_singular_values_cpu,
    singular_values_many,
)

# --- oracles: the implementations before the merge (regularizers/nuclear.py, structure/spectrum.py)


def _old_gram_spectrum(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    w = matrix.detach()
    if w.shape[0] < w.shape[1]:
        w = w.T
    if min(w.shape) <= 256:
        w = w.double()
    evals, vecs = torch.linalg.eigh(w.T @ w)  # ascending
    sigma = evals.flip(0).clamp_min(0).sqrt()
    return w, sigma, vecs.flip(1)


def _old_restore(result: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    if matrix.shape[0] < matrix.shape[1]:
        result = result.T
    return result.to(matrix.dtype).contiguous()


def _old_numerical_rank_mask(sigma: torch.Tensor, rows: int) -> torch.Tensor:
    eps = torch.finfo(sigma.dtype).eps
    cutoff = sigma[:1].clamp_min(torch.finfo(sigma.dtype).tiny) * 10 * (rows * eps) ** 0.5
    return sigma > cutoff


def _old_polar_fast(matrix: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, float]:
    with torch.no_grad():
        w, sigma, v = _old_gram_spectrum(matrix)
        keep = _old_numerical_rank_mask(sigma, w.shape[0])
        vk = v[:, keep]
        q = ((w @ vk) / sigma[keep].clamp_min(smoothing)) @ vk.T
        return _old_restore(q, matrix), float(sigma.sum())


def _old_svt_fast(matrix: torch.Tensor, tau: float) -> tuple[torch.Tensor, float]:
    with torch.no_grad():
        w, sigma, v = _old_gram_spectrum(matrix)
        keep = sigma > tau
        factor = 1 - tau / sigma[keep]
        vk = v[:, keep]
        out = ((w @ vk) * factor) @ vk.T
        return _old_restore(out, matrix), float((sigma[keep] - tau).sum())


def _old_polar_exact(matrix: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, float]:
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
        if smoothing > 0:
            u = u * (s / s.clamp_min(smoothing))
        return u @ vh, float(s.sum())


def _old_svt_exact(matrix: torch.Tensor, tau: float) -> tuple[torch.Tensor, float]:
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
        shrunk = (s - tau).clamp_min(0)
        keep = shrunk > 0
        out = (u[:, keep] * shrunk[keep]) @ vh[keep]
        return out.to(matrix.dtype), float(shrunk.sum())


def _old_batch_singular_values(stack: torch.Tensor) -> torch.Tensor:
    """The measurement path, ``method="gram"``, on CPU."""
    a = stack if stack.shape[-2] <= stack.shape[-1] else stack.transpose(-2, -1)
    a = a.to(torch.float64)
    gram = a @ a.transpose(-2, -1)
    eig = torch.stack([torch.linalg.eigvalsh(g) for g in gram])
    return eig.to(torch.float64).clamp_min(0).sqrt().flip(-1)


# --- bit-identity ------------------------------------------------------------------------------

# Tall, wide, square, vectors, the MLP/LeNet/cnn-small layer shapes, and both sides of the
# 256 float64 cap (float32 weights above it keep a float32 Gram matrix).
SHAPES = [(5, 3), (3, 5), (4, 4), (1, 7), (7, 1), (150, 784), (84, 120), (256, 400), (300, 280)]


def _cases(shape: tuple[int, int], dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(sum(shape))
    m, n = shape
    r = max(1, min(shape) // 3)
    low = torch.randn(m, r, generator=g) @ torch.randn(r, n, generator=g)  # rank r
    return [t.to(dtype) for t in (torch.randn(m, n, generator=g), low, torch.zeros(m, n))]


def _same(new: tuple[torch.Tensor, float], old: tuple[torch.Tensor, float]) -> bool:
    return new[0].dtype == old[0].dtype and torch.equal(new[0], old[0]) and new[1] == old[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_nuclear_prox_and_polar_factor_are_bit_identical_to_before(
    shape: tuple[int, int], dtype: torch.dtype
) -> None:
    for w in _cases(shape, dtype):
        top = float(torch.linalg.matrix_norm(w.double(), 2)) or 1.0
        for c in (0.0, 0.1 * top):
            assert _same(polar_factor_with_norm(w, "fast", c), _old_polar_fast(w, c))
            assert _same(polar_factor_with_norm(w, "exact", c), _old_polar_exact(w, c))
        for tau in (0.0, 1e-3 * top, 0.3 * top, 2 * top):
            assert _same(singular_value_threshold_with_norm(w, tau, "fast"), _old_svt_fast(w, tau))
            assert _same(singular_value_threshold_with_norm(w, tau, "exact"), _old_svt_exact(w, tau))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_measured_spectra_agree_with_before_and_with_svd_to_1e12_of_sigma_1(
    shape: tuple[int, int], dtype: torch.dtype
) -> None:
    mats = _cases(shape, dtype)
    new = singular_values_many(mats, "gram")
    old = _old_batch_singular_values(torch.stack(mats))
    for w, a, b in zip(mats, new, old, strict=True):
        ref = torch.linalg.svdvals(w.double())
        assert a.dtype == torch.float64 and a.shape == ref.shape and bool((a[:-1] >= a[1:]).all())
        # the resolution of a float64 Gram matrix: λ = σ² to ≈ k·ε·σ₁² (a zero σ reads ≈ 1e-8·σ₁)
        tol = 1e-12 * float(ref[0]) ** 2
        torch.testing.assert_close(a.square(), b.square(), rtol=0, atol=tol)
        torch.testing.assert_close(a.square(), ref.square(), rtol=0, atol=tol)


def test_cpu_gram_reads_any_layout_without_changing_the_answer() -> None:
    """Row-major, column-major (a transposed view), strided (a conv tap) and float64 in place."""
    g = torch.Generator().manual_seed(5)
    kernel = torch.randn(16, 8, 3, 3, generator=g)
    wide = torch.randn(12, 40, generator=g)
    views = [wide, wide.T, wide.T.contiguous().T, wide.double(), wide.double().T,
             kernel.flatten(2)[:, :, 4], kernel.reshape(16, -1), torch.randn(1, 9, generator=g)]
    for w in views:
        before = w.clone()
        ref = torch.linalg.svdvals(w.double())
        got = gram_singular_values_cpu(w)
        torch.testing.assert_close(got.square(), ref.square(), rtol=0, atol=1e-12 * float(ref[0]) ** 2)
        assert torch.equal(w, before)  # the input (possibly shared with numpy) is not written


# --- the routine itself ------------------------------------------------------------------------


def test_gram_eigh_exact_answers() -> None:
    _, sigma, _ = gram_eigh(torch.eye(6))
    assert torch.equal(sigma, torch.ones(6, dtype=torch.float64))  # identity: all σ = 1
    u, v = torch.arange(1.0, 5.0), torch.tensor([3.0, 4.0])
    _, sigma, _ = gram_eigh(torch.outer(u, v))  # rank one: σ₁ = ‖u‖‖v‖, σ₂ = 0
    top = 30**0.5 * 5
    torch.testing.assert_close(sigma[0], torch.tensor(top, dtype=torch.float64), atol=0, rtol=1e-14)
    assert 0 <= sigma[1] < 1e-8 * top  # zero, to the resolution ≈ 1e-8·σ₁ of a float64 Gram matrix


@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (5, 5)])
def test_gram_eigh_vectors_reconstruct_the_tall_matrix(shape: tuple[int, int]) -> None:
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a, sigma, v = gram_eigh(w, vectors=True)
    assert a.shape == (max(shape), min(shape))
    torch.testing.assert_close(a, w if shape[0] >= shape[1] else w.T)
    torch.testing.assert_close(v.T @ v, torch.eye(min(shape), dtype=torch.float64))
    torch.testing.assert_close(((a @ v) / sigma) @ (sigma[:, None] * v.T), a)  # A = U Σ Vᵀ
    torch.testing.assert_close(sigma, torch.linalg.svdvals(w))


def test_gram_eigh_batched_on_cpu_matches_one_matrix_at_a_time() -> None:
    stack = torch.randn(2, 3, 6, 9, generator=torch.Generator().manual_seed(4))  # (..., m, n)
    a, sigma, v = gram_eigh(stack, vectors=True)
    assert a.shape == (2, 3, 9, 6) and sigma.shape == (2, 3, 6) and v.shape == (2, 3, 6, 6)
    for i, j in ((0, 0), (1, 2)):
        ai, si, vi = gram_eigh(stack[i, j], vectors=True)
        assert torch.equal(a[i, j], ai)
        torch.testing.assert_close(sigma[i, j], si, rtol=1e-13, atol=0)  # bmm vs mm: last bits
        torch.testing.assert_close(v[i, j].abs(), vi.abs(), rtol=0, atol=1e-12)  # up to sign


def test_precision_rule() -> None:
    assert gram_dtype(10_000, torch.float32) == torch.float64  # no cap: always float64
    assert gram_dtype(FLOAT64_MAX_SIDE, torch.float32, FLOAT64_MAX_SIDE) == torch.float64
    assert gram_dtype(FLOAT64_MAX_SIDE + 1, torch.float32, FLOAT64_MAX_SIDE) == torch.float32
    assert gram_dtype(1, torch.float32, 0) == torch.float32
    w = torch.randn(FLOAT64_MAX_SIDE + 1, 300)
    _, sigma, _ = gram_eigh(w, float64_max_side=FLOAT64_MAX_SIDE)
    assert sigma.dtype == torch.float32 and gram_eigh(w)[1].dtype == torch.float64
