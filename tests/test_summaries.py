"""robustness.summaries on closed-form curves, and a property that ties ε₅₀ of the curve to the
median of the inputs' minimal budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankrobust.robustness.summaries import eps50, eps_min_quantiles, robust_area, summarize


def test_area_of_closed_form_curves() -> None:
    assert robust_area([0.1, 0.2, 0.3], [0.7, 0.7, 0.7], 0.7) == pytest.approx(0.7)  # flat
    # a straight line from clean 1 at ε 0 to 0 at ε_max: half the rectangle
    assert robust_area([0.25, 0.5, 0.75, 1.0], [0.75, 0.5, 0.25, 0.0], 1.0) == pytest.approx(0.5)
    # two trapezoids by hand: ((1 + 0.5)/2·0.1 + (0.5 + 0)/2·0.1) / 0.2
    assert robust_area([0.2, 0.1], [0.0, 0.5], 1.0) == pytest.approx(0.5)
    # a stored ε 0 row replaces clean accuracy at 0; ε_max 0 gives the clean value itself
    assert robust_area([0.0, 0.1], [0.9, 0.3], 0.9) == pytest.approx(0.6)
    assert robust_area([0.0], [0.4], 0.4) == 0.4
    with pytest.raises(ValueError):
        robust_area([0.1, -0.1], [0.5, 0.5], 1.0)


def test_eps50_interpolates_where_robust_accuracy_halves() -> None:
    # clean 0.8 → half 0.4, reached between (0.1, 0.6) and (0.2, 0.2): 0.1 + 0.2/0.4·0.1
    assert eps50([0.1, 0.2], [0.6, 0.2], 0.8) == pytest.approx(0.15)
    assert eps50([0.25, 0.5, 0.75, 1.0], [0.75, 0.5, 0.25, 0.0], 1.0) == pytest.approx(0.5)
    assert math.isnan(eps50([0.1, 0.2], [0.6, 0.5], 0.8))  # never halves within the grid
    assert math.isnan(eps50([0.1], [0.0], 0.0))  # nothing to halve
    assert eps50([0.1], [0.0], 0.6) == pytest.approx(0.05)


def test_eps_min_quantiles() -> None:
    # misclassified (0) are left out; never broken (NaN) counts as +∞
    q = eps_min_quantiles([0.0, 0.1, 0.2, 0.3, math.nan])
    assert q == {0.25: 0.1, 0.5: 0.2, 0.75: 0.3}
    assert eps_min_quantiles([math.nan, math.nan, 0.1])[0.5] == math.inf
    assert all(math.isnan(v) for v in eps_min_quantiles([0.0, 0.0]).values())
    with pytest.raises(ValueError):
        eps_min_quantiles([-0.1])
    assert set(summarize([0.1], [0.5], 1.0, [0.1, math.nan])) == {
        "area", "eps50", "eps_min_q25", "eps_min_q50", "eps_min_q75"}


GRID = [0.02, 0.04, 0.06, 0.08, 0.1]


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, *GRID, math.nan]), min_size=1, max_size=40))
def test_median_minimal_budget_brackets_eps50(values: list[float]) -> None:
    """With ε_min on the grid and the curve made from it (robust at ε iff ε_min > ε or never
    broken), the median ε_min is the first grid budget where robust accuracy is ≤ half of clean,
    and the interpolated ε₅₀ lies in the grid interval that ends there."""
    eps_min = np.array(values)
    n = len(eps_min)
    clean = float(np.mean(np.isnan(eps_min) | (eps_min > 0)))
    robust = [float(np.mean(np.isnan(eps_min) | (eps_min > e))) for e in GRID]
    median = eps_min_quantiles(eps_min)[0.5]
    e50 = eps50(GRID, robust, clean)
    if clean == 0:
        assert math.isnan(median) and math.isnan(e50)
        return
    reached = [e for e, r in zip(GRID, robust, strict=True) if r <= clean / 2 + 1e-12]
    if not reached:
        assert median == math.inf and math.isnan(e50)
        return
    assert median == reached[0]
    below = max([0.0, *[e for e in GRID if e < median]])
    assert below < e50 <= median + 1e-12
    area = robust_area(GRID, robust, clean)
    assert 0 <= area <= clean + 1e-12 and n >= 1
