"""Arms and contrasts: the effects of the claims table with their bootstrap intervals.

An :class:`Arm` is one method's runs in one scope (dataset, model, setting): per-seed values
and, when the study stored per-point results, a seeds × points matrix. A *contrast* is a
weighted sum Σ w_j · mean(arm_j) (C2: ℓ1+nuclear − natural; C3: gains of CNN − FC); a *matched*
contrast reads a method's path at another arm's clean accuracy (C4, C6). Intervals come from
one :class:`~rankrobust.report.stats.Resampler` per dataset (see :mod:`rankrobust.report.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from rankrobust.report.frontier import interpolate_path
from rankrobust.report.stats import (
    APPROXIMATE,
    BOOTSTRAP,
    RESAMPLES,
    SEEDS_ONLY,
    Effect,
    Resampler,
    binomial_sd,
    bootstrap_effect,
)


@dataclass(frozen=True)
class Arm:
    """Values of one arm: ``per_seed`` (S,), ``matrix`` (S, P) over ``points`` or None, ``n``
    test points (NaN: not a rate over test points)."""

    seeds: tuple[object, ...]
    per_seed: np.ndarray
    matrix: np.ndarray | None = None
    points: tuple[int, ...] | None = None
    n: float = math.nan

    @property
    def mean(self) -> float:
        if self.matrix is not None:
            return float(self.matrix.mean())
        return float(self.per_seed.mean()) if self.per_seed.size else math.nan

    def restrict(self, seeds: Sequence[object], points: Sequence[int] | None) -> Arm:
        rows = [self.seeds.index(s) for s in seeds]
        if self.matrix is None or points is None or self.points is None:
            return Arm(tuple(seeds), self.per_seed[rows], None, None, self.n)
        where = {p: i for i, p in enumerate(self.points)}
        cols = [where[p] for p in points]
        m = self.matrix[np.ix_(rows, cols)]
        return Arm(tuple(seeds), self.per_seed[rows], m, tuple(points), float(len(points)))


def index_points(values: pd.DataFrame) -> dict[str, pd.Series]:
    """run_id → that run's per-point values (a Series indexed by point), from a table with
    columns run_id, point, value."""
    return {str(rid): g.set_index("point")["value"].astype(float) for rid, g in values.groupby("run_id")}


def make_arm(runs: pd.DataFrame, column: str, points: Mapping[str, pd.Series] | None = None,
             n_column: str | None = None) -> Arm | None:
    """The arm of ``runs`` (one scope) on ``column``, with per-point values (:func:`index_points`)
    when every seed has them; None when no run has a value."""
    if column not in runs.columns:
        return None
    valid = runs.dropna(subset=[column])
    if valid.empty:
        return None
    per_seed = valid.groupby("seed")[column].mean().sort_index()
    seeds = tuple(per_seed.index)
    n = float(valid[n_column].min()) if n_column and n_column in valid and valid[n_column].notna().any() \
        else math.nan
    if points:
        rows = {}
        for seed, g in valid.groupby("seed"):
            own = [points[str(r)] for r in g["run_id"] if str(r) in points]
            if own:
                rows[seed] = pd.concat(own, axis=1).mean(axis=1) if len(own) > 1 else own[0]
        if len(rows) == len(seeds):
            grid = pd.DataFrame([rows[s] for s in seeds]).dropna(axis=1)  # (S, P)
            if grid.shape[1] > 0:
                return Arm(seeds, per_seed.to_numpy(float), grid.to_numpy(float),
                           tuple(int(p) for p in grid.columns), float(grid.shape[1]))
    return Arm(seeds, per_seed.to_numpy(float), None, None, n)


def pair(arms: Sequence[Arm]) -> list[Arm]:
    """The arms restricted to their common seeds and, when all have per-point values, points."""
    seeds = [s for s in arms[0].seeds if all(s in a.seeds for a in arms[1:])]
    points: list[int] | None = None
    if all(a.matrix is not None for a in arms):
        others = [set(a.points or ()) for a in arms[1:]]
        points = [p for p in arms[0].points or () if all(p in o for o in others)] or None
    return [a.restrict(seeds, points) for a in arms]


class Context:
    """The resamplers of one dataset: seeds + points, and points only (for ``se_point``)."""

    def __init__(self, seeds: Sequence[object], points: Sequence[int] | None,
                 resamples: int = RESAMPLES) -> None:
        self.full = Resampler(seeds, points, resamples)
        self.points_only = Resampler(seeds, points, resamples, fixed_seeds=True) if points else None

    def draws(self, arm: Arm, resampler: Resampler) -> np.ndarray:
        return resampler.mean(arm.matrix if arm.matrix is not None else arm.per_seed,
                              arm.seeds, arm.points if arm.matrix is not None else None)


def _test(arms: Sequence[Arm], noise_sd: float) -> str:
    """How an interval was made: per-point bootstrap, seeds + binomial noise, or seeds only."""
    if all(a.matrix is not None for a in arms):
        return BOOTSTRAP
    return APPROXIMATE if math.isfinite(noise_sd) else SEEDS_ONLY


def contrast(terms: Sequence[tuple[float, Arm]], ctx: Context, rate: bool,
             reference: float = math.nan) -> Effect:
    """Σ w · mean(arm) with its bootstrap CI; terms are used as given (pair them first)."""
    arms = [a for _, a in terms]
    if any(len(a.seeds) == 0 for a in arms):
        return Effect(math.nan, math.nan, math.nan, 0, "–")
    per_point = all(a.matrix is not None for a in arms)
    if not per_point:
        terms = [(w, replace(a, matrix=None, points=None)) for w, a in terms]
    estimate = sum(w * a.mean for w, a in terms)
    draws = np.sum([w * ctx.draws(a, ctx.full) for w, a in terms], axis=0)
    point_draws: np.ndarray | None = None
    sd = math.nan
    if per_point and ctx.points_only is not None:
        point_draws = np.sum([w * ctx.draws(a, ctx.points_only) for w, a in terms], axis=0)
    elif rate:
        sd = binomial_sd([(w, a.per_seed, a.n) for w, a in terms])
        draws = draws + ctx.full.noise(sd)
    common = [s for s in arms[0].seeds if all(s in a.seeds for a in arms[1:])]
    per_seed = np.array([sum(w * a.per_seed[a.seeds.index(s)] for w, a in terms) for s in common])
    n = min(len(a.seeds) for a in arms)
    return bootstrap_effect(float(estimate), np.asarray(draws), point_draws, n,
                            _test(arms, sd), reference, sd, per_seed)


@dataclass(frozen=True)
class PathPoint:
    """One setting of a method's path: its area arm and its clean-accuracy arm."""

    area: Arm
    clean: Arm


def _read(path: Sequence[PathPoint], clean: np.ndarray, area: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(B,) the path read at clean accuracy ``at`` per resample (clean, area: (K, B))."""
    return np.array([interpolate_path(clean[:, b], area[:, b], float(at[b]))
                     for b in range(at.shape[0])])


def matched(ref: PathPoint, path: Sequence[PathPoint], ctx: Context, sign: int) -> tuple[Effect, str]:
    """sign · (path read at ref's clean accuracy − ref's area), and a note ('' when the paths
    overlap). The path and the reference are resampled together (same seeds, same points)."""
    clean_k = np.array([p.clean.mean for p in path])
    area_k = np.array([p.area.mean for p in path])
    target = ref.clean.mean
    value = interpolate_path(clean_k, area_k, target)
    if not math.isfinite(value):
        low, high = (float(np.nanmin(clean_k)), float(np.nanmax(clean_k))) if len(path) else (math.nan,) * 2
        return (Effect(math.nan, math.nan, math.nan, 0, "–"),
                f"paths do not overlap in clean accuracy: path {low:.3f}–{high:.3f}, "
                f"reference {target:.3f}")
    arms = [ref.area, ref.clean, *(a for p in path for a in (p.area, p.clean))]
    per_point = all(a.matrix is not None for a in arms)
    use = arms if per_point else [replace(a, matrix=None, points=None) for a in arms]

    def effect_draws(resampler: Resampler) -> np.ndarray:
        d = [ctx.draws(a, resampler) for a in use]  # each (B,)
        clean = np.array(d[3::2])  # (K, B)
        area = np.array(d[2::2])
        return sign * (_read(path, clean, area, d[1]) - d[0])

    draws = effect_draws(ctx.full)
    point_draws = effect_draws(ctx.points_only) if per_point and ctx.points_only is not None else None
    sd = math.nan
    if not per_point:
        nearest = path[int(np.nanargmin(np.abs(clean_k - target)))]
        sd = binomial_sd([(1.0, ref.area.per_seed, ref.area.n), (1.0, nearest.area.per_seed, nearest.area.n)])
        draws = draws + ctx.full.noise(sd)
    n = min(len(ref.area.seeds), max(len(p.area.seeds) for p in path))
    estimate = sign * (value - ref.area.mean)
    test = _test(use, sd) + ", path read by linear interpolation in clean accuracy"
    return bootstrap_effect(estimate, draws, point_draws, n, test, ref.area.mean, sd), ""
