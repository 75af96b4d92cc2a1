"""Regularizer math: soft-thresholding, SVT, polar factor, penalties and gradients (float64)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import examples
from rankrobust.errors import ConfigError
from rankrobust.regularizers import (
    as_matrix,
    l1_penalty,
    nuclear_norm,
    nuclear_penalty,
    polar_factor,
    polar_factor_with_norm,
    product_l1_penalty,
    select_weights,
    singular_value_threshold,
    singular_value_threshold_with_norm,
    soft_threshold,
    weight_product,
)

METHODS = ["exact", "fast"]


def _orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return q


def _with_spectrum(m: int, n: int, sigma: list[float], seed: int = 0) -> torch.Tensor:
    """U diag(σ) Vᵀ with random orthonormal U (m, k), V (n, k)."""
    k = len(sigma)
    u, v = _orthonormal(m, k, seed), _orthonormal(n, k, seed + 1)
    return (u * torch.tensor(sigma, dtype=torch.float64)) @ v.T


# --- soft-thresholding -------------------------------------------------------------------------


def test_soft_threshold_exact_values_and_zeros() -> None:
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 2.0])
    out = soft_threshold(x, 0.5)
    assert torch.equal(out, torch.tensor([-2.5, -0.5, 0.0, 0.0, 0.0, 0.0, 1.5]))
    assert int((out == 0).sum()) == 4  # exact zeros, not tiny numbers


@settings(max_examples=examples(50), deadline=None)
@given(
    st.lists(st.floats(-10, 10, allow_nan=False, width=64), min_size=1, max_size=30),
    st.floats(0, 5, allow_nan=False),
)
def test_soft_threshold_properties(values: list[float], tau: float) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    out = soft_threshold(x, tau)
    small = x.abs() <= tau
    assert torch.all(out[small] == 0)
    assert torch.allclose(out[~small], x[~small] - tau * x[~small].sign())
    # prox optimality: out minimizes ½(z − x)² + τ|z|, check against a few perturbations
    obj = 0.5 * (out - x) ** 2 + tau * out.abs()
    for d in (-1e-3, 1e-3):
        z = out + d
        assert torch.all(obj <= 0.5 * (z - x) ** 2 + tau * z.abs() + 1e-12)


def test_soft_threshold_rejects_negative_tau() -> None:
    with pytest.raises(ValueError):
        soft_threshold(torch.ones(3), -1.0)


# --- singular value thresholding ---------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_svt_hand_built_case(method: str) -> None:
    # W = diag(3, 1, 0.5) padded to 4×3: SVT_{0.75} = diag(2.25, 0.25, 0) (rank 2)
    w = torch.zeros(4, 3, dtype=torch.float64)
    w[0, 0], w[1, 1], w[2, 2] = 3.0, 1.0, 0.5
    out, norm = singular_value_threshold_with_norm(w, 0.75, method)  # type: ignore[arg-type]
    expected = torch.zeros(4, 3, dtype=torch.float64)
    expected[0, 0], expected[1, 1] = 2.25, 0.25
    assert torch.allclose(out, expected, atol=1e-12)
    assert norm == pytest.approx(2.5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(7, 5), (5, 7)])
def test_svt_matches_hand_built_svd(method: str, shape: tuple[int, int]) -> None:
    sigma = [4.0, 2.0, 1.0, 0.3, 0.1]
    u, v = _orthonormal(shape[0], 5, 1), _orthonormal(shape[1], 5, 2)
    w = (u * torch.tensor(sigma, dtype=torch.float64)) @ v.T
    tau = 0.5
    expected = (u * torch.tensor([3.5, 1.5, 0.5, 0.0, 0.0], dtype=torch.float64)) @ v.T
    out = singular_value_threshold(w, tau, method)  # type: ignore[arg-type]
    assert out.shape == w.shape and out.dtype == w.dtype
    assert torch.allclose(out, expected, atol=1e-10)
    assert int(torch.linalg.matrix_rank(out)) == 3  # exactly low rank


@pytest.mark.parametrize("method", METHODS)
def test_svt_float32_fast_matches_exact(method: str) -> None:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(300, 280, generator=g) / 17
    tau = 0.3
    ref = singular_value_threshold(w.double(), tau, "exact")
    out = singular_value_threshold(w, tau, method)  # type: ignore[arg-type]
    assert out.dtype == torch.float32
    assert (out.double() - ref).norm() / ref.norm() < 1e-4


def test_svt_zero_threshold_is_identity_and_large_threshold_is_zero() -> None:
    w = _with_spectrum(6, 4, [2.0, 1.0, 0.5, 0.2])
    for method in METHODS:
        assert torch.allclose(singular_value_threshold(w, 0.0, method), w, atol=1e-10)  # type: ignore[arg-type]
        assert torch.count_nonzero(singular_value_threshold(w, 5.0, method)) == 0  # type: ignore[arg-type]


@settings(max_examples=examples(25), deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.floats(0.0, 2.0), st.integers(0, 10_000))
def test_svt_shrinks_singular_values_property(m: int, n: int, tau: float, seed: int) -> None:
    w = torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    s = torch.linalg.svdvals(w)
    for method in METHODS:
        out, norm = singular_value_threshold_with_norm(w, tau, method)  # type: ignore[arg-type]
        s_out = torch.linalg.svdvals(out)
        assert torch.allclose(s_out, (s - tau).clamp_min(0), atol=1e-8)
        assert norm == pytest.approx(float((s - tau).clamp_min(0).sum()), abs=1e-8)


# --- nuclear norm, polar factor, gradients -----------------------------------------------------


def test_nuclear_norm_value() -> None:
    w = _with_spectrum(5, 4, [3.0, 2.0, 0.5])
    assert float(nuclear_norm(w)) == pytest.approx(5.5)
    assert float(nuclear_penalty([w, 2 * w])) == pytest.approx(16.5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(6, 4), (4, 6)])
def test_polar_factor_is_gradient_of_nuclear_norm(method: str, shape: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(5)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    q, norm = polar_factor_with_norm(w, method)  # type: ignore[arg-type]
    assert norm == pytest.approx(float(torch.linalg.svdvals(w).sum()))
    # central finite differences of ‖W‖_* along every entry
    h = 1e-6
    fd = torch.zeros_like(w)
    for i in range(shape[0]):
        for j in range(shape[1]):
            e = torch.zeros_like(w)
            e[i, j] = h
            fd[i, j] = (nuclear_norm(w + e) - nuclear_norm(w - e)) / (2 * h)
    assert torch.allclose(q, fd, atol=1e-6)
    # U Vᵀ has unit singular values (orthonormal rows or columns)
    assert torch.allclose(torch.linalg.svdvals(q), torch.ones(min(shape), dtype=torch.float64))


def test_polar_factor_fast_rank_deficient_is_subgradient() -> None:
    w = _with_spectrum(8, 6, [3.0, 1.0])  # rank 2
    q = polar_factor(w, "fast")
    assert torch.allclose(torch.linalg.svdvals(q)[:2], torch.ones(2, dtype=torch.float64))
    assert torch.linalg.matrix_rank(q) == 2
    assert float((q * w).sum()) == pytest.approx(4.0)  # ⟨Q, W⟩ = ‖W‖_*


def test_nuclear_and_l1_gradcheck() -> None:
    g = torch.Generator().manual_seed(7)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: nuclear_penalty([x, as_matrix(y)]), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: l1_penalty([x, y]), (a, b))
    value = l1_penalty([a, b])
    assert value.item() == pytest.approx((a.abs().sum() + b.abs().sum()).item())
    value.backward()
    assert a.grad is not None and torch.equal(a.grad, a.detach().sign())


def test_product_l1_value_and_gradcheck() -> None:
    g = torch.Generator().manual_seed(8)
    ws = [torch.randn(o, i, generator=g, dtype=torch.float64, requires_grad=True)
          for i, o in [(6, 5), (5, 4), (4, 3)]]
    expected = (ws[2] @ ws[1] @ ws[0]).abs().sum()
    assert product_l1_penalty(ws).item() == pytest.approx(expected.item())
    assert weight_product(ws).shape == (3, 6)
    assert torch.autograd.gradcheck(lambda *m: product_l1_penalty(list(m)), tuple(ws))


def test_product_l1_rejects_broken_chain() -> None:
    with pytest.raises(ConfigError, match="chained"):
        weight_product([torch.ones(4, 3), torch.ones(2, 5)])


# --- selection ---------------------------------------------------------------------------------


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 5), nn.Linear(5, 2))


def test_select_weights_default_regex_and_matrix_view() -> None:
    net = _net()
    refs = select_weights(net)
    assert [r.path for r in refs] == ["0", "3", "4"]
    assert refs[0].shape == (3, 9)  # conv (3, 1, 3, 3) as (out, in·kh·kw)
    with torch.no_grad():
        refs[0].matrix().zero_()  # a view: zeroing the matrix zeroes the parameter
    assert torch.count_nonzero(net[0].weight) == 0
    assert [r.path for r in select_weights(net, r"^[34]$")] == ["3", "4"]


def test_select_weights_errors() -> None:
    with pytest.raises(ConfigError, match="selects no"):
        select_weights(_net(), "nothing")
    with pytest.raises(ConfigError, match="invalid layers pattern"):
        select_weights(_net(), "([")
