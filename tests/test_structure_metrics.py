"""Structure metrics on one tensor: exact answers and hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import examples
from rankrobust.errors import ConfigError
from rankrobust.structure import (
    effective_rank,
    effective_sparsity,
    frobenius_norm,
    hill_numbers,
    l1_norm,
    normalized_effective_rank,
    normalized_effective_sparsity,
    nuclear_norm,
    numerical_rank,
    spectral_norm,
    stable_rank,
)

ORDERS = [0.0, 0.5, 1.0, 2.0, 3.0, math.inf]


@pytest.mark.parametrize("n", [1, 2, 5, 17])
@pytest.mark.parametrize("order", ORDERS)
def test_identity_has_full_effective_rank(n: int, order: float) -> None:
    assert effective_rank(torch.eye(n), order) == pytest.approx(n, rel=1e-12)
    assert stable_rank(torch.eye(n)) == pytest.approx(n, rel=1e-12)
    assert normalized_effective_rank(torch.eye(n), order) == pytest.approx(1.0)
    assert numerical_rank(torch.eye(n)) == n


@pytest.mark.parametrize("order", ORDERS)
def test_rank_one_has_effective_rank_one(order: float) -> None:
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(7, 1, generator=g), torch.randn(1, 11, generator=g)
    w = u.double() @ v.double()
    # roundoff σ ≈ 1e-16·σ₁ weigh in as p^α: orders below 1 amplify them (√1e-16 = 1e-8)
    assert effective_rank(w, order) == pytest.approx(1.0, abs=1e-9 if order >= 1 or order == 0 else 1e-6)
    assert stable_rank(w) == pytest.approx(1.0, rel=1e-12)
    assert numerical_rank(w) == 1
    assert nuclear_norm(w) == pytest.approx(float(u.norm() * v.norm()), rel=1e-6)


def test_diagonal_matrices_hand_computed_entropies() -> None:
    # σ = (3, 1): p = (3/4, 1/4)
    d = torch.diag(torch.tensor([3.0, 1.0]))
    shannon = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_rank(d) == pytest.approx(math.exp(shannon), rel=1e-12)  # 1.7548…
    assert effective_rank(d, 2) == pytest.approx(1 / (0.75**2 + 0.25**2), rel=1e-12)  # 1.6
    assert effective_rank(d, math.inf) == pytest.approx(4 / 3, rel=1e-12)
    assert effective_rank(d, 0) == 2
    # σ = (2, 1, 1): p = (1/2, 1/4, 1/4), H = 1.5 log 2
    d = torch.diag(torch.tensor([2.0, -1.0, 1.0]))  # signs do not change singular values
    assert effective_rank(d) == pytest.approx(2**1.5, rel=1e-12)
    assert effective_rank(d, 2) == pytest.approx(8 / 3, rel=1e-12)
    assert effective_rank(d, math.inf) == pytest.approx(2.0, rel=1e-12)
    assert effective_rank(d, 0.5) == pytest.approx((math.sqrt(0.5) + 1.0) ** 2, rel=1e-12)
    assert stable_rank(d) == pytest.approx(6 / 4, rel=1e-12)
    assert nuclear_norm(d) == pytest.approx(4.0)
    assert spectral_norm(d) == pytest.approx(2.0)
    assert frobenius_norm(d) == pytest.approx(math.sqrt(6))
    assert l1_norm(d) == pytest.approx(4.0)


@pytest.mark.parametrize(("k", "n"), [(1, 10), (3, 10), (10, 10), (4, 1000)])
@pytest.mark.parametrize("order", ORDERS)
def test_k_equal_nonzeros_give_effective_sparsity_k(k: int, n: int, order: float) -> None:
    w = torch.zeros(n)
    w[torch.randperm(n, generator=torch.Generator().manual_seed(k))[:k]] = torch.tensor(
        [(-1.0) ** i * 0.3 for i in range(k)]
    )
    assert effective_sparsity(w, order) == pytest.approx(k, rel=1e-12)
    assert normalized_effective_sparsity(w, order) == pytest.approx(k / n, rel=1e-12)


def test_effective_sparsity_hand_computed() -> None:
    w = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])  # |w| / Σ|w| = (1/2, 1/4, 1/4) and a zero
    assert effective_sparsity(w) == pytest.approx(2**1.5, rel=1e-12)
    assert effective_sparsity(w, 2) == pytest.approx(8 / 3, rel=1e-12)
    assert effective_sparsity(w, 0) == 3


def test_zero_and_empty_tensors_are_defined() -> None:
    z = torch.zeros(4, 6)
    for order in ORDERS:
        assert effective_rank(z, order) == 0.0
        assert effective_sparsity(z, order) == 0.0
        assert normalized_effective_rank(z, order) == 0.0
        assert normalized_effective_sparsity(z, order) == 0.0
    assert stable_rank(z) == 0.0 and numerical_rank(z) == 0
    assert nuclear_norm(z) == spectral_norm(z) == frobenius_norm(z) == l1_norm(z) == 0.0
    assert hill_numbers(torch.zeros(3, 0)).tolist() == [0.0, 0.0, 0.0]


def test_numpy_and_conv_kernel_inputs() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3, 2, 2)).astype(np.float32)
    as_matrix = torch.from_numpy(w).reshape(5, 12)
    assert effective_rank(w) == pytest.approx(effective_rank(as_matrix), rel=1e-12)
    assert stable_rank(w) == pytest.approx(stable_rank(as_matrix), rel=1e-12)
    assert effective_sparsity(w) == pytest.approx(effective_sparsity(as_matrix), rel=1e-12)
    assert nuclear_norm(w) == pytest.approx(float(np.linalg.svd(w.reshape(5, 12).astype(np.float64),
                                                               compute_uv=False).sum()), rel=1e-10)
    assert numerical_rank(w) == np.linalg.matrix_rank(w.reshape(5, 12))


def test_numerical_rank_threshold() -> None:
    d = torch.diag(torch.tensor([1.0, 1e-3, 1e-9], dtype=torch.float64))
    assert numerical_rank(d) == 3
    assert numerical_rank(d, rtol=1e-6) == 2
    assert numerical_rank(d, rtol=1e-2) == 1


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(ConfigError, match="matrix"):
        effective_rank(torch.ones(3))
    with pytest.raises(ConfigError, match="order"):
        effective_rank(torch.eye(2), -1.0)
    with pytest.raises(ConfigError, match="order"):
        effective_sparsity(torch.eye(2), float("nan"))
    with pytest.raises(ConfigError, match="numpy"):
        effective_rank([[1.0, 0.0], [0.0, 1.0]])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rtol"):
        numerical_rank(torch.eye(2), rtol=-1.0)


# ---- properties -------------------------------------------------------------------------------

matrices = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=st.floats(-10, 10, allow_nan=False, width=32))
).filter(lambda a: float(np.abs(a).max()) > 1e-3)
SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@SETTINGS
@given(matrices, st.integers(0, 2**16), st.sampled_from(ORDERS[1:]))
def test_invariant_to_orthogonal_transforms(a: np.ndarray, seed: int, order: float) -> None:
    w = torch.from_numpy(a)
    u, v = _orthogonal(w.shape[0], seed), _orthogonal(w.shape[1], seed + 1)
    rotated = u @ w @ v
    assert effective_rank(rotated, order) == pytest.approx(effective_rank(w, order), rel=1e-6)
    assert stable_rank(rotated) == pytest.approx(stable_rank(w), rel=1e-6)
    assert nuclear_norm(rotated) == pytest.approx(nuclear_norm(w), rel=1e-9)


@SETTINGS
@given(matrices, st.floats(1e-3, 1e3), st.sampled_from(ORDERS))
def test_invariant_to_scale(a: np.ndarray, scale: float, order: float) -> None:
    w = torch.from_numpy(a)
    for sign in (1.0, -1.0):
        assert effective_rank(sign * scale * w, order) == pytest.approx(effective_rank(w, order), rel=1e-6)
        assert effective_sparsity(sign * scale * w, order) == pytest.approx(
            effective_sparsity(w, order), rel=1e-9)
        assert stable_rank(sign * scale * w) == pytest.approx(stable_rank(w), rel=1e-9)


@SETTINGS
@given(matrices)
def test_bounds_and_order_monotonicity(a: np.ndarray) -> None:
    m, n = a.shape
    values = [effective_rank(a, order) for order in ORDERS]
    tol = 1e-9
    assert all(1 - tol <= v <= min(m, n) + tol for v in values)
    assert all(x >= y - 1e-9 * x for x, y in zip(values[1:], values[2:], strict=False))  # D_α ↓ in α
    assert values[0] >= values[2] * (1 - 1e-6)  # D_0 counts σ above roundoff: ≥ D_1 up to it
    assert 1 - tol <= stable_rank(a) <= effective_rank(a, 0) + tol  # stable ≤ rank
    sparsity = [effective_sparsity(a, order) for order in ORDERS]
    assert all(1 - tol <= v <= a.size + tol for v in sparsity)
    assert sparsity[0] == np.count_nonzero(np.abs(a) > a.size * np.finfo(np.float64).eps * np.abs(a).max())
