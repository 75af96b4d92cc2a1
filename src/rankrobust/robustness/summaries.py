"""Summaries of a robustness curve and of per-input minimal budgets (pure functions).

A curve is robust accuracy a(ε) measured at budgets ε₁ < … < ε_K, with a(0) = clean accuracy
(an input is robust at ε = 0 iff it is correctly classified). Between measured budgets a(ε) is
taken piecewise linear through (0, a(0)), (ε₁, a(ε₁)), …, (ε_K, a(ε_K)).

- **area** = (1/ε_max) ∫₀^ε_max a(ε) dε by the trapezoid rule on those points, ε_max = ε_K: the
  mean robust accuracy over [0, ε_max], in [0, 1] (= a(0) when ε_max = 0). Normalizing by ε_max
  makes curves of different ε ranges comparable; the raw area is area·ε_max.
- **ε₅₀** = the smallest ε with a(ε) ≤ a(0)/2 on the piecewise-linear curve: the budget at which
  robust accuracy halves. NaN when a(ε_K) > a(0)/2 (not reached within the grid) or a(0) = 0.
- **ε_min quantiles**: per input, ε_min(i) is the smallest budget at which it is not robust
  (0 = misclassified unperturbed, NaN = robust at every budget, read as +∞). Quantile q of ε_min
  over the correctly classified inputs (ε_min > 0), with numpy's "inverted_cdf" rule (the
  smallest value v with share(ε_min ≤ v) ≥ q, so the quantile is always an observed ε_min):
  +∞ when more than 1 − q of them are never broken. With ε_min on the grid, the 0.5 quantile is
  the smallest grid budget at which at least half of the correct inputs are broken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

QUANTILES = (0.25, 0.5, 0.75)


def _points(epsilons: Sequence[float], robust: Sequence[float], clean: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """(ε, a) sorted by ε with (0, clean) first; a budget 0 on the curve replaces it."""
    eps = np.asarray(epsilons, dtype=np.float64)
    acc = np.asarray(robust, dtype=np.float64)
    if eps.shape != acc.shape or eps.ndim != 1:
        raise ValueError(f"epsilons and robust accuracies must be two lists of one length, "
                         f"got {eps.shape} and {acc.shape}")
    if not (np.isfinite(eps).all() and (eps >= 0).all() and np.isfinite(acc).all()
            and math.isfinite(clean)):
        raise ValueError("budgets must be finite and ≥ 0, accuracies finite")
    order = np.argsort(eps, kind="stable")
    eps, acc = eps[order], acc[order]
    keep = eps > 0
    return np.concatenate([[0.0], eps[keep]]), np.concatenate([[clean], acc[keep]])


def robust_area(epsilons: Sequence[float], robust: Sequence[float], clean: float) -> float:
    """Mean robust accuracy over [0, ε_max] (module docstring): trapezoids through (0, clean)
    and the measured (ε_k, a_k), divided by ε_max = max ε_k."""
    eps, acc = _points(epsilons, robust, clean)
    if eps[-1] == 0:
        return float(acc[0])
    return float(np.sum((acc[1:] + acc[:-1]) / 2 * np.diff(eps)) / eps[-1])


def eps50(epsilons: Sequence[float], robust: Sequence[float], clean: float) -> float:
    """The smallest ε at which the piecewise-linear a(ε) falls to clean/2; NaN if it does not
    within the measured budgets or clean accuracy is 0."""
    eps, acc = _points(epsilons, robust, clean)
    half = clean / 2
    if clean <= 0:
        return math.nan
    below = np.flatnonzero(acc <= half)
    if not len(below):
        return math.nan
    j = int(below[0])  # j ≥ 1 since acc[0] = clean > half
    e0, e1, a0, a1 = eps[j - 1], eps[j], acc[j - 1], acc[j]
    return float(e0 + (a0 - half) / (a0 - a1) * (e1 - e0))  # a0 > half ≥ a1


def eps_min_quantiles(eps_min: Sequence[float] | np.ndarray,
                      quantiles: Sequence[float] = QUANTILES) -> dict[float, float]:
    """q → quantile of ε_min over the correctly classified inputs (module docstring); NaN for
    every q when no input is correctly classified."""
    values = np.asarray(eps_min, dtype=np.float64)
    if (values[~np.isnan(values)] < 0).any():
        raise ValueError("ε_min must be ≥ 0 or NaN")
    correct = values[np.isnan(values) | (values > 0)]
    if not len(correct):
        return {float(q): math.nan for q in quantiles}
    ranked = np.where(np.isnan(correct), np.inf, correct)
    return {float(q): float(np.quantile(ranked, q, method="inverted_cdf")) for q in quantiles}


def summarize(epsilons: Sequence[float], robust: Sequence[float], clean: float,
              eps_min: Sequence[float] | np.ndarray | None = None) -> dict[str, float]:
    """{"area", "eps50", and with ``eps_min`` "eps_min_q25", "eps_min_q50", "eps_min_q75"}."""
    out = {"area": robust_area(epsilons, robust, clean), "eps50": eps50(epsilons, robust, clean)}
    if eps_min is not None:
        for q, v in eps_min_quantiles(eps_min).items():
            out[f"eps_min_q{round(q * 100):02d}"] = v
    return out
