"""Robust-accuracy area over [0, ε_train] and the accuracy–robustness frontier.

**Area.** For a run whose robust accuracy RA(ε) was stored at budgets ε₁ < ε₂ < … of one attack,
A = (1/ε_train) ∫₀^ε_train RA(ε) dε by the trapezoid rule over the nodes 0, the stored budgets
below ε_train, and ε_train itself, with RA(0) = the clean accuracy on the same points and
RA(ε_train) read off the curve (linear between its neighbours when ε_train is not stored).
A ∈ [0, 1]: 1 is a network that no budget up to ε_train breaks. ε_train is the budget the
adversarial runs of the same dataset and model trained at (their ``eps``, median), unless given.

Per test point i with minimal breaking budget e_i (0: misclassified clean, NaN: never broken up
to the largest budget tried), RA_i(ε) = 1[e_i > ε or e_i is NaN]; its area A_i uses the same
nodes (the run's stored budgets, or the distinct e_i where no curve is stored), so that the
mean of A_i over points equals the run's A.

**Primary attack.** The strongest attack (AutoAttack > APGD-T > APGD-CE > PGD > FGSM) whose every
run stores a *curve* up to ε_train: at least two budgets in (0, ε_train] and one ≥ ε_train. An
attack stored at one budget only (e.g. AutoAttack at ε_train) is passed over for the next one,
and :func:`choose_attack` says so in its note.

**Frontier.** Per (dataset, model, method) a *path*: one point (mean clean accuracy, mean area
over seeds) per setting (λ, ε_train, rank), weakest setting first (:func:`path_order`).
:func:`interpolate_path` reads a path at a clean
accuracy c by linear interpolation between the two path points (sorted by clean accuracy) that
bracket c, and is NaN where c lies outside the path's range: those paths do not overlap there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rankrobust.report.summary import attack_strength, methods_of_kind, setting, strength

Scope = tuple[str, str]  # (dataset, model)
_TOL = 1e-9


def params_of(text: Any) -> dict[str, Any]:
    """A run's method parameters, stored as JSON text or already parsed ({} when neither)."""
    try:
        data = json.loads(text) if isinstance(text, str) else dict(text or {})
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def eps_train_of(runs: pd.DataFrame, given: float | None = None) -> dict[Scope, float]:
    """ε_train per (dataset, model): ``given``, else the median ``eps`` of the adversarial runs."""
    out: dict[Scope, float] = {}
    adversarial = set(methods_of_kind("adversarial"))
    for (dataset, model), group in runs.groupby(["dataset", "model"]):
        if given is not None:
            out[(str(dataset), str(model))] = float(given)
            continue
        params = group.get("method_params", pd.Series("{}", index=group.index))
        eps = [float(params_of(p).get("eps", math.nan)) for m, p in zip(group["method"], params, strict=True)
               if m in adversarial]
        eps = [e for e in eps if math.isfinite(e) and e > 0]
        if eps:
            out[(str(dataset), str(model))] = float(np.median(eps))
    return out


def has_curve(epsilons: ArrayLike, eps_train: float) -> bool:
    """At least two budgets in (0, ε_train] and one that reaches ε_train."""
    eps = np.unique(np.asarray(epsilons, float))
    inside = eps[(eps > 0) & (eps <= eps_train * (1 + _TOL))]
    return inside.size >= 2 and bool(np.any(eps >= eps_train * (1 - _TOL)))


def area_over(epsilons: ArrayLike, robust: ArrayLike, clean: float,
              eps_train: float) -> float:
    """(1/ε_train) ∫₀^ε_train RA dε over the nodes of the module docstring (NaN: the curve
    does not reach ε_train)."""
    eps = np.asarray(epsilons, float)
    ra = np.asarray(robust, float)
    keep = eps > 0
    eps, ra = eps[keep], ra[keep]
    order = np.argsort(eps)
    eps, ra = eps[order], ra[order]
    if eps_train <= 0 or eps.size == 0 or eps[-1] < eps_train * (1 - _TOL) or not math.isfinite(clean):
        return math.nan
    at_end = float(np.interp(eps_train, eps, ra))
    below = eps < eps_train * (1 - _TOL)
    xs = np.concatenate([[0.0], eps[below], [eps_train]])
    ys = np.concatenate([[clean], ra[below], [at_end]])
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / eps_train)


def choose_attack(curves: pd.DataFrame, eps_train: Mapping[Scope, float],
                  norm: str = "inf") -> tuple[str | None, str]:
    """(primary attack, note): the strongest attack whose every run has a curve up to ε_train
    (``curves``: robustness rows with dataset and model). Runs of a (dataset, model) without an
    ε_train (no adversarial run there yet) have no area whichever attack is chosen, and do not
    decide the choice."""
    if curves.empty:
        return None, "no robustness curves stored"
    scoped = pd.Series([(str(d), str(m)) in eps_train for d, m in
                        zip(curves["dataset"], curves["model"], strict=True)], index=curves.index)
    passed: list[str] = []
    for attack in attack_strength():
        rows = curves[(curves["attack"] == attack) & (curves["norm"] == norm) & scoped]
        if rows.empty:
            continue
        ok = all(has_curve(g["epsilon"], eps_train[(str(d), str(m))])
                 for (_, d, m), g in rows.groupby(["run_id", "dataset", "model"]))
        if ok:
            note = (f"Robust-accuracy area from the {attack} curve" +
                    (f"; {', '.join(passed)} stored no curve up to ε_train (fewer than two budgets "
                     "in (0, ε_train]), so the strongest attack with a curve is used" if passed else ""))
            return attack, note + "."
        passed.append(attack)
    return None, f"no attack stores a curve up to ε_train ({', '.join(passed) or 'none'} tried)"


def run_areas(curves: pd.DataFrame, eps_train: Mapping[Scope, float], attack: str,
              norm: str = "inf") -> pd.DataFrame:
    """One row per run: run_id, area (robust accuracy over [0, ε_train]), fr_area (the fooling
    ratio's, FR(0) = 0), clean (on the attack's points), n."""
    rows = []
    sel = curves[(curves["attack"] == attack) & (curves["norm"] == norm)]
    for (run, dataset, model), g in sel.groupby(["run_id", "dataset", "model"]):
        e = eps_train.get((str(dataset), str(model)), math.nan)
        ra = g["robust_accuracy"].to_numpy(float)
        zero = g["epsilon"].to_numpy(float) == 0
        clean = (float(ra[zero][0]) if zero.any() else
                 float(g["clean_accuracy"].dropna().iloc[0]) if g["clean_accuracy"].notna().any()
                 else math.nan)
        n = float(g["n"].max()) if "n" in g and g["n"].notna().any() else math.nan
        fr = g["fooling_ratio"].to_numpy(float) if "fooling_ratio" in g else np.full(len(g), np.nan)
        rows.append({"run_id": run, "area": area_over(g["epsilon"], ra, clean, e),
                     "fr_area": area_over(g["epsilon"], fr, 0.0, e), "clean": clean, "n": n})
    return pd.DataFrame(rows, columns=["run_id", "area", "fr_area", "clean", "n"])


def point_areas(points: pd.DataFrame, curves: pd.DataFrame, eps_train: Mapping[Scope, float],
                attack: str, norm: str = "inf") -> pd.DataFrame:
    """Per (run, point) of the per-point table (run_id, attack, norm, point, eps_min, with
    dataset and model joined): run_id, point, area, clean (1 when classified correctly)."""
    sel = points[(points["attack"] == attack) & (points["norm"] == norm)]
    grids = curves[(curves["attack"] == attack) & (curves["norm"] == norm)].groupby("run_id")["epsilon"]
    stored = {str(run): np.unique(g.to_numpy(float)) for run, g in grids}
    out = []
    for (run, dataset, model), g in sel.groupby(["run_id", "dataset", "model"]):
        e = eps_train.get((str(dataset), str(model)), math.nan)
        emin = g["eps_min"].to_numpy(float)  # (P,)
        grid = stored.get(str(run), np.unique(emin[np.isfinite(emin)]))
        grid = grid[(grid > 0) & (grid < e * (1 - _TOL))]
        nodes = np.concatenate([[0.0], grid, [e]])  # (K,)
        alive = np.isnan(emin)[:, None] | (emin[:, None] > nodes[None, :])  # (P, K)
        y = alive.astype(float)
        area = (np.sum((y[:, 1:] + y[:, :-1]) * np.diff(nodes)[None, :], axis=1) / 2.0 / e
                if math.isfinite(e) and e > 0 else np.full(len(emin), math.nan))
        out.append(pd.DataFrame({"run_id": run, "point": g["point"].astype(int).to_numpy(),
                                 "area": area, "clean": y[:, 0]}))
    if not out:
        return pd.DataFrame(columns=["run_id", "point", "area", "clean"])
    return pd.concat(out, ignore_index=True)


def interpolate_path(clean: ArrayLike, values: ArrayLike, at: float) -> float:
    """The path's value at clean accuracy ``at``: linear between the bracketing points (sorted by
    clean accuracy); NaN outside the path's range (no overlap) or for an empty path."""
    c = np.asarray(clean, float)
    v = np.asarray(values, float)
    ok = np.isfinite(c) & np.isfinite(v)
    c, v = c[ok], v[ok]
    if c.size == 0 or not math.isfinite(at) or at < c.min() - _TOL or at > c.max() + _TOL:
        return math.nan
    order = np.argsort(c, kind="stable")
    return float(np.interp(at, c[order], v[order]))


def path_order(method: str, params: Any) -> tuple[Any, ...]:
    """Sort key of a setting along its method's path, weakest first: the swept values (λ up,
    rank budget down), then every other numeric parameter (e.g. ε_train) upwards."""
    values = params_of(params)
    rest = tuple(float(v) for _, v in sorted(values.items())
                 if isinstance(v, (int, float)) and not isinstance(v, bool))
    return (*strength(method, values), *rest)


FRONTIER_COLUMNS = ["dataset", "model", "method", "method_params", "setting", "clean_accuracy",
                    "area", "seeds"]


def frontier(runs: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """The accuracy–robustness frontier: one row per (dataset, model, method, setting) with
    clean_accuracy (mean over seeds, on the attack's points), area (mean), seeds, method_params
    and its ``setting`` label; each method's rows in :func:`path_order` (the path the figure
    joins). ``values``: run_id, area, clean. Runs flagged ``degenerate`` are left out."""
    if runs.empty or values.empty:
        return pd.DataFrame(columns=FRONTIER_COLUMNS)
    keep = [c for c in ("run_id", "dataset", "model", "method", "method_params", "seed", "degenerate")
            if c in runs]
    frame = runs[keep].merge(values, on="run_id")
    if "degenerate" in frame:
        frame = frame[~frame["degenerate"].fillna(False).astype(bool)]
    frame = frame.assign(method_params=[json.dumps(params_of(p), sort_keys=True)
                                        for p in frame.get("method_params", pd.Series(dtype=object))])
    frame = frame.dropna(subset=["area", "clean"])
    if frame.empty:
        return pd.DataFrame(columns=FRONTIER_COLUMNS)
    out = (frame.groupby(["dataset", "model", "method", "method_params"])
           .agg(clean_accuracy=("clean", "mean"), area=("area", "mean"), seeds=("seed", "nunique"))
           .reset_index())
    out["setting"] = [setting(m, p) for m, p in zip(out["method"], out["method_params"], strict=True)]
    key = [(str(d), str(m), str(k), path_order(k, p)) for d, m, k, p in
           zip(out["dataset"], out["model"], out["method"], out["method_params"], strict=True)]
    out = out.iloc[sorted(range(len(out)), key=lambda i: key[i])]
    return out.reset_index(drop=True)[FRONTIER_COLUMNS]
