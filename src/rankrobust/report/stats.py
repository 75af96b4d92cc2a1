"""Effects, intervals and verdict rules of the claims table.

**Hierarchical bootstrap** (:class:`Resampler`). An effect is a linear combination of arm means,
each arm a matrix X (seeds × test points) of per-point values (e.g. each point's robust-accuracy
area). One resample draws the seeds with replacement (counts c, shared by every arm: the same
seed stays paired across arms) and then the test points with replacement (counts p, shared by
every arm and seed: the same points in every arm), and takes each arm's weighted mean
Σ_s Σ_i c_s p_i X[s, i] / (Σ c · Σ p). The CI is the 2.5 % / 97.5 % percentile of
:data:`RESAMPLES` resamples drawn from a fixed generator seed, so a table is reproduced exactly.
Points are crossed with seeds (every run is evaluated on the same points), which is why one
point draw serves all seeds. With few seeds the percentile interval of the seed level is
narrow (3 seeds give 10 distinct seed draws: roughly [min, max] of the per-seed effects), so
the paired Student-t interval is kept beside it (``t_low``, ``t_high``).

Without per-point values (a database that stores only curves) each arm is a seeds × 1 matrix
and the point level is approximated by **binomial point noise**: each resample adds
N(0, σ²), σ² = Σ_arms w² · mean_s p_s(1 − p_s)/n (a value in [0, 1] of mean p has variance at
most p(1 − p); the seeds share the points, so their point noise is not divided by the number of
seeds; arms are treated as independent). The row's ``interval`` column says which was used.

The **point-level standard error** ``se_point`` of a row is the spread of the effect over point
resamples alone (seeds fixed), or σ above. A row is **borderline** when the CI edge nearer to 0
lies within one ``se_point`` of 0: the sign of such a finding can flip with the test points or
the machine's float rounding.

**Verdicts** of a row claiming the sign ``direction`` of its effect, margin m ≥ 0 (see
:mod:`rankrobust.experiments.margins`), in this order:

1. *not measurable*: a rate (accuracy, area) whose two arms are both at the floor (≤ 1 %) or
   both at the ceiling (≥ 99 %): no effect can show;
2. *inconclusive*: fewer than 2 seeds, or no finite interval;
3. *holds* / *does not hold*: the CI excludes 0, on the claimed / the other side. Such a row is
   never negligible; when its CI also lies inside ±m it is flagged *small*;
4. *negligible*: the CI contains 0 and lies inside ±m;
5. *inconclusive* otherwise.

Rows a claim cannot use say *not testable* (e.g. C5 when adversarial training did not lower the
rank). How rows combine into a claim's verdict: :data:`COMBINE_RULES` (:func:`combine`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

HOLDS, FAILS, INCONCLUSIVE, NEGLIGIBLE = "holds", "does not hold", "inconclusive", "negligible"
NOT_MEASURABLE, NOT_TESTABLE = "not measurable", "not testable"
VERDICTS = (HOLDS, FAILS, NEGLIGIBLE, INCONCLUSIVE, NOT_MEASURABLE, NOT_TESTABLE)
RESAMPLES = 4000  # ≥ 2,000 as the scoring rules require
BOOTSTRAP_SEED = 20190126
FLOOR, CEILING = 0.01, 0.99
BOOTSTRAP = "hierarchical bootstrap (seeds, then test points)"
APPROXIMATE = "bootstrap over seeds + binomial point noise"
SEEDS_ONLY = "bootstrap over seeds"

COMBINE_RULES = (
    "Rows that say *not measurable* or *not testable* carry no evidence and are set aside; a "
    "claim whose rows are all such says *not measurable* (if any row is) or *not testable*.",
    "Of the remaining rows: the claim **holds** when every row holds; is **negligible** when "
    "every row is negligible; **does not hold** when no row holds or is inconclusive and at "
    "least one does not hold (the rest negligible: no row supports the claim); "
    "**inconclusive** otherwise (rows that disagree, or any inconclusive row).",
    "A claim is marked *borderline* when any row that entered its verdict is borderline.",
    "Secondary rows (fooling ratio, relative gains, matched-accuracy companions) are shown but "
    "do not enter a claim's verdict.",
)


@dataclass(frozen=True)
class Effect:
    """A difference with its 95 % CI; ``relative`` = estimate / |reference mean|.

    ``se_point``: the point-level standard error (NaN: unknown); ``t_low``/``t_high``: the
    Student-t interval over per-seed values, shown beside the bootstrap's."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    test: str
    relative: float = float("nan")
    se_point: float = float("nan")
    t_low: float = float("nan")
    t_high: float = float("nan")


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t interval; NaN bounds for fewer than 2 finite values."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def at_bound(a: float, b: float, floor: float = FLOOR, ceiling: float = CEILING) -> bool:
    """Both arms' rates at the floor (≤ ``floor``) or both at the ceiling (≥ ``ceiling``)."""
    return (a <= floor and b <= floor) or (a >= ceiling and b >= ceiling)


def verdict(effect: Effect, direction: int, margin: float = 0.0) -> str:
    """holds / does not hold / negligible / inconclusive (rules 2–5 of the module doc)."""
    low, high = effect.ci_low, effect.ci_high
    if effect.n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if low > 0 or high < 0:
        return HOLDS if (low > 0) == (direction > 0) else FAILS
    if margin > 0 and -margin <= low and high <= margin:
        return NEGLIGIBLE
    return INCONCLUSIVE


def is_small(effect: Effect, margin: float) -> bool:
    """The CI excludes 0 but lies inside ±``margin``: a real effect, and a small one."""
    low, high = effect.ci_low, effect.ci_high
    return (math.isfinite(margin) and margin > 0 and (low > 0 or high < 0)
            and -margin <= low and high <= margin)


def is_borderline(effect: Effect) -> bool:
    """The CI edge nearer to 0 lies within one point-level standard error of 0."""
    se, low, high = effect.se_point, effect.ci_low, effect.ci_high
    if not (math.isfinite(se) and math.isfinite(low) and math.isfinite(high)):
        return False
    return min(abs(low), abs(high)) <= se


def combine(verdicts: Sequence[str]) -> str:
    """One verdict from a claim's rows (:data:`COMBINE_RULES`)."""
    void = [v for v in verdicts if v in (NOT_MEASURABLE, NOT_TESTABLE)]
    rows = [v for v in verdicts if v not in (NOT_MEASURABLE, NOT_TESTABLE)]
    if not rows:
        if not void:
            return INCONCLUSIVE
        return NOT_MEASURABLE if NOT_MEASURABLE in void else NOT_TESTABLE
    if all(v == HOLDS for v in rows):
        return HOLDS
    if all(v == NEGLIGIBLE for v in rows):
        return NEGLIGIBLE
    if set(rows) <= {FAILS, NEGLIGIBLE} and FAILS in rows:
        return FAILS
    return INCONCLUSIVE


def combine_rules() -> list[str]:
    """The combination rules as sentences, for the report."""
    return list(COMBINE_RULES)


class Resampler:
    """Deterministic hierarchical resampling of seeds, then test points (module docstring).

    ``seeds``: every seed label an arm may use; ``points``: every test-point index (None: no
    per-point data). ``fixed_seeds``: every seed counted once (points-only resampling, for the
    point-level standard error)."""

    def __init__(self, seeds: Sequence[object], points: Sequence[int] | None = None,
                 resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 fixed_seeds: bool = False) -> None:
        if resamples < 1:
            raise ValueError(f"resamples must be ≥ 1, got {resamples}")
        rng = np.random.default_rng(seed)
        self.resamples = resamples
        self.seed_index = {s: i for i, s in enumerate(seeds)}
        k = len(self.seed_index)
        self.seed_counts = (np.ones((resamples, k)) if fixed_seeds or k == 0 else
                            rng.multinomial(k, np.full(k, 1.0 / k), size=resamples).astype(float))
        self.point_index = {int(p): i for i, p in enumerate(points)} if points is not None else {}
        m = len(self.point_index)
        self.point_counts = (rng.multinomial(m, np.full(m, 1.0 / m), size=resamples).astype(float)
                             if m else None)  # (B, P)
        self._noise = np.random.default_rng([seed, 1]).standard_normal(resamples)
        self._all_points = tuple(self.point_index)
        self._cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def mean(self, values: np.ndarray, seeds: Sequence[object],
             points: Sequence[int] | None = None) -> np.ndarray:
        """(B,) resampled means of ``values`` (S × P per-point, or (S,) per-seed values) whose
        rows are ``seeds`` and columns ``points``; NaN where a resample drew none of its seeds."""
        x = np.asarray(values, float)
        c = self.seed_counts[:, [self.seed_index[s] for s in seeds]]  # (B, S)
        if x.ndim == 1 or points is None or self.point_counts is None:
            x = x.reshape(len(seeds), -1).mean(axis=1)  # (S,)
            with np.errstate(invalid="ignore", divide="ignore"):
                return (c @ x) / c.sum(axis=1)
        p, p_total = self._points(points)  # (B, P), (B,)
        num = np.einsum("bp,bp->b", c @ x, p)  # Σ_s Σ_i c_s X[s, i] p_i
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / (c.sum(axis=1) * p_total)

    def _points(self, points: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The point counts of ``points`` (columns in that order) and their row sums, cached:
        the arms of a table mostly share one point set."""
        key = tuple(int(i) for i in points)
        if key not in self._cache:
            assert self.point_counts is not None
            if key == self._all_points:
                p = self.point_counts
            else:
                p = self.point_counts[:, [self.point_index[i] for i in key]]
            self._cache = {key: (p, p.sum(axis=1))} if len(self._cache) > 8 else self._cache
            self._cache[key] = (p, p.sum(axis=1))
        return self._cache[key]

    def noise(self, sd: float) -> np.ndarray:
        """(B,) draws of N(0, sd²), the same standard normals for every row of a table."""
        return sd * self._noise if math.isfinite(sd) and sd > 0 else np.zeros(self.resamples)


def binomial_sd(arms: Sequence[tuple[float, np.ndarray, float]]) -> float:
    """σ of the binomial point-noise approximation: √(Σ w² · mean_s p_s(1 − p_s)/n) over
    ``arms`` = (weight w, per-seed rates p_s, test points n)."""
    total = 0.0
    for w, rates, n in arms:
        p = np.clip(np.asarray(rates, float), 0.0, 1.0)
        if not (n >= 1) or p.size == 0:
            return math.nan
        total += w * w * float(np.mean(p * (1 - p))) / n
    return math.sqrt(total)


def interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite ``draws`` (NaN when fewer than half are finite)."""
    d = np.asarray(draws, float)
    d = d[np.isfinite(d)]
    if d.size == 0 or d.size < 0.5 * len(draws):
        return math.nan, math.nan
    low, high = np.quantile(d, [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def bootstrap_effect(estimate: float, draws: np.ndarray, point_draws: np.ndarray | None,
                     n: int, test: str, reference: float = math.nan, point_sd: float = math.nan,
                     per_seed: np.ndarray | None = None) -> Effect:
    """An Effect from resampled ``draws`` (seeds + points, noise included); ``point_draws``
    (points only) give ``se_point``, else ``point_sd``; ``per_seed``: per-seed effects for the
    t column."""
    low, high = interval(draws) if n >= 2 else (math.nan, math.nan)
    if point_draws is not None:
        finite = np.asarray(point_draws, float)
        finite = finite[np.isfinite(finite)]
        point_sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    t_low = t_high = math.nan
    if per_seed is not None:
        _, t_low, t_high = t_interval(per_seed)
    rel = estimate / abs(reference) if math.isfinite(reference) and reference else math.nan
    return Effect(estimate, low, high, n, test, rel, point_sd, t_low, t_high)
