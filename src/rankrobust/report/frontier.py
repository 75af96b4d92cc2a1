"""The accuracy–robustness frontier: clean accuracy against robust-accuracy area, per run.

For a run with robust-accuracy curve ra(ε) of an ℓ∞ attack and clean accuracy a₀ (on the same
points, the curve's value at ε = 0), the **robust-accuracy area** over [0, ε_train] is

    A = (1/ε_end) ∫₀^ε_end ra(ε) dε,   ra(0) = a₀,   ε_end = min(ε_train, largest stored ε),

by the trapezoid rule over the stored budgets in (0, ε_train]: the curve's average height, in
[0, 1], equal to a₀ for a network no attack moves and about a₀/2 for one that falls linearly
to 0 at ε_train. ε_train is the largest training budget (``eps``) of the adversarial runs of
the same dataset and model; without adversarial runs, the largest budget the attack stored.

The attack (one per dataset and model, so that every point of a panel is measured alike) is the
strongest one (:data:`~rankrobust.report.summary.ATTACK_STRENGTH`) whose curve has at least two
budgets in (0, ε_train] for every run; failing that, the best curve available: the one with the
most such budgets, the stronger on a tie.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from rankrobust.report.summary import ATTACK_STRENGTH, methods_of_kind, strength

FRONTIER_COLUMNS = ["run_id", "dataset", "model", "method", "setting", "seed", "clean_accuracy",
                    "method_params", "degenerate", "area", "attack", "eps_train", "eps_end"]


def eps_train(runs: pd.DataFrame, robustness: pd.DataFrame) -> float:
    """The largest ``eps`` of the adversarial runs in ``runs``; else the largest ℓ∞ budget of
    ``robustness``; NaN when neither is stored."""
    adversarial = runs[runs["method"].isin(methods_of_kind("adversarial"))]
    stored = [p.get("eps") for p in adversarial.get("method_params", pd.Series(dtype=object))
              if isinstance(p, dict)]
    budgets = [float(b) for b in stored if isinstance(b, (int, float)) and b > 0]
    if budgets:
        return max(budgets)
    linf = robustness[robustness["norm"] == "inf"] if "norm" in robustness else robustness.iloc[:0]
    return float(linf["epsilon"].max()) if len(linf) else float("nan")


def robust_area(epsilon: np.ndarray, robust: np.ndarray, clean: float, eps_max: float
                ) -> tuple[float, float]:
    """(area A, ε_end) of the module doc for one curve; (NaN, NaN) without a budget in
    (0, eps_max] or without a finite clean accuracy."""
    eps, ra = np.asarray(epsilon, float), np.asarray(robust, float)
    keep = (eps > 0) & (eps <= eps_max * (1 + 1e-9)) & np.isfinite(ra)
    if not keep.any() or not math.isfinite(clean):
        return float("nan"), float("nan")
    order = np.argsort(eps[keep])
    xs = np.concatenate([[0.0], eps[keep][order]])
    ys = np.concatenate([[clean], ra[keep][order]])
    end = float(xs[-1])
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0) / end, end


def _budgets(curves: pd.DataFrame, run_ids: list[str], attack: str, eps_max: float) -> int:
    """The fewest budgets in (0, eps_max] that ``attack`` stored for any of ``run_ids``."""
    sub = curves[(curves["attack"] == attack) & (curves["epsilon"] > 0)
                 & (curves["epsilon"] <= eps_max * (1 + 1e-9))]
    counts = sub.groupby("run_id")["epsilon"].nunique()
    return min((int(counts.get(r, 0)) for r in run_ids), default=0)


def frontier_attack(curves: pd.DataFrame, run_ids: list[str], eps_max: float) -> str | None:
    """The attack of the module doc for these runs' ℓ∞ ``curves`` (None: no curve at all)."""
    stored = [a for a in ATTACK_STRENGTH if (curves["attack"] == a).any()]
    stored += sorted(set(map(str, curves["attack"])) - set(stored))
    counts = {a: _budgets(curves, run_ids, a, eps_max) for a in stored}
    for attack in stored:
        if counts[attack] >= 2:
            return attack
    best = max(stored, key=lambda a: (counts[a], -stored.index(a)), default=None)
    return best if best is not None and counts[best] > 0 else None


def _clean(curve: pd.DataFrame, run: dict[Any, Any]) -> float:
    """Clean accuracy on the curve's own points where stored, else the run's."""
    if "clean_accuracy" in curve and curve["clean_accuracy"].notna().any():
        return float(curve["clean_accuracy"].astype(float).mean())
    return float(run.get("clean_accuracy", float("nan")))


def frontier(summary: pd.DataFrame, robustness: pd.DataFrame) -> pd.DataFrame:
    """One row per run of ``summary`` (run_id, dataset, model, method, setting, seed,
    clean_accuracy): its robust-accuracy area and how it was measured (:data:`FRONTIER_COLUMNS`)."""
    rows: list[dict[str, Any]] = []
    if summary.empty or robustness.empty or "robust_accuracy" not in robustness:
        return pd.DataFrame(rows, columns=FRONTIER_COLUMNS)
    linf = robustness[robustness["norm"] == "inf"]
    for _, group in summary.groupby(["dataset", "model"], sort=True):
        ids = list(group["run_id"])
        curves = linf[linf["run_id"].isin(ids)]
        budget = eps_train(group, curves)
        attack = frontier_attack(curves, ids, budget) if math.isfinite(budget) else None
        if attack is None:
            continue
        own = curves[curves["attack"] == attack]
        for run in group.to_dict(orient="records"):
            curve = own[own["run_id"] == run["run_id"]]
            area, end = robust_area(curve["epsilon"].to_numpy(float),
                                    curve["robust_accuracy"].to_numpy(float),
                                    _clean(curve, run), budget)
            rows.append({**{k: run.get(k) for k in FRONTIER_COLUMNS[:8]},
                         "degenerate": bool(run.get("degenerate", False)), "area": area,
                         "attack": attack, "eps_train": budget, "eps_end": end})
    return pd.DataFrame(rows, columns=FRONTIER_COLUMNS)


def path_order(method: str, params: Any) -> tuple[Any, ...]:
    """Sort key of a setting along its method's path, weakest first: the swept values (λ up,
    rank budget down), then every other numeric parameter (e.g. ε_train) upwards."""
    values = params if isinstance(params, dict) else {}
    rest = tuple(float(v) for _, v in sorted(values.items())
                 if isinstance(v, (int, float)) and not isinstance(v, bool))
    return (*strength(method, values), *rest)


def frontier_paths(points: pd.DataFrame) -> pd.DataFrame:
    """Mean clean accuracy and area per (dataset, model, method, parameter set) over the runs
    that are not degenerate, each method's settings in :func:`path_order`: the path the figure
    joins."""
    columns = ["dataset", "model", "method", "setting", "clean_accuracy", "area", "seeds"]
    if "degenerate" in points:
        points = points[~points["degenerate"].astype(bool)]
    if points.empty:
        return pd.DataFrame(columns=columns)
    order = pd.Series([path_order(m, p) for m, p in zip(points["method"], points["method_params"],
                                                        strict=True)], index=points.index, dtype=object)
    keyed = points.assign(
        node=[json.dumps(p, sort_keys=True, default=str) for p in points["method_params"]],
        order=order)
    means = (keyed.groupby(["dataset", "model", "method", "node"], dropna=False)
             .agg(setting=("setting", "first"), clean_accuracy=("clean_accuracy", "mean"),
                  area=("area", "mean"), seeds=("seed", "nunique"), order=("order", "first"))
             .reset_index())
    means = means.iloc[sorted(range(len(means)), key=lambda i: (
        means["dataset"].iloc[i], means["model"].iloc[i], means["method"].iloc[i],
        means["order"].iloc[i]))]
    return means[columns].reset_index(drop=True)
