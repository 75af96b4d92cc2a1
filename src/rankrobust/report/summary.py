"""One row per run (structure, robustness, accuracy) and the rule that picks λ for comparisons.

Per run:
- ``erank`` / ``esparsity``: mean over the model's weight layers of the *normalized* effective
  rank erank(W)/min(m, n) and effective sparsity esparsity(W)/(m·n) at the last recorded epoch
  (normalizing makes layers of different size comparable; both lie in (0, 1]).
- ``fr_auc_<attack>_<norm>``: the normalized area under the fooling-ratio curve,
  (1/(ε_max − ε_min)) ∫ FR(ε) dε by the trapezoid rule over the stored ε grid, i.e. the mean
  fooling ratio over the budget range (in [0, 1]; lower = more robust).
- ``rho_adv``: DeepFool's mean ‖r‖₂/‖x‖₂ (higher = more robust), when stored.

λ selection (stated in the report): for every (dataset, model) and regularizer, the candidate λ
settings are ordered by (λ_*, λ₁); the chosen one is the largest whose mean clean accuracy over
seeds is at least natural training's mean minus ``tolerance`` (2 points by default). When none
qualifies, the one with the highest mean clean accuracy is chosen and flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rankrobust.report.tables import StudyTables

ADVERSARIAL = ("fgsm", "pgd")
REGULARIZED = ("l1", "nuclear", "l1+nuclear", "product-l1")
METHOD_ORDER = ("natural", "fgsm", "pgd", "l1", "nuclear", "l1+nuclear", "product-l1")
METHOD_LABELS = {
    "natural": "natural", "fgsm": "FGSM-adv", "pgd": "PGD-adv", "l1": "ℓ1",
    "nuclear": "nuclear", "l1+nuclear": "ℓ1+nuclear", "product-l1": "product-ℓ1",
}
LAMBDA_TOLERANCE = 0.02


def family(model: str) -> str:
    """'FC' for the fully connected ``mlp``, 'CNN' for the convolutional models."""
    return "FC" if model == "mlp" else "CNN"


def curve_area(epsilon: np.ndarray, values: np.ndarray) -> float:
    """Normalized trapezoid area (1/(ε_max − ε_min)) ∫ values dε; the value itself for one ε."""
    order = np.argsort(epsilon)
    eps, val = np.asarray(epsilon, float)[order], np.asarray(values, float)[order]
    if eps.size == 0:
        return float("nan")
    if eps.size == 1 or eps[-1] == eps[0]:
        return float(val.mean())
    area = float(np.sum((val[1:] + val[:-1]) * np.diff(eps)) / 2.0)
    return area / float(eps[-1] - eps[0])


def final_structure(structure: pd.DataFrame) -> pd.DataFrame:
    """The structure rows of each run's last recorded epoch."""
    if structure.empty:
        return structure
    last = structure.groupby("run_id")["epoch"].transform("max")
    return structure[structure["epoch"] == last].reset_index(drop=True)


def run_summary(tables: StudyTables) -> pd.DataFrame:
    """One row per run: identity columns, accuracy, timings, erank, esparsity, fr_auc_*, rho_adv."""
    keep = [c for c in ("run_id", "dataset", "model", "method", "seed", "lambda_l1",
                        "lambda_nuclear", "adv_eps", "clean_accuracy", "train_seconds",
                        "eval_seconds") if c in tables.runs.columns]
    out = tables.runs[keep].copy()
    for col in ("lambda_l1", "lambda_nuclear", "adv_eps"):
        if col in out.columns:
            out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0.0)
    out["family"] = out["model"].map(family)
    final = final_structure(tables.structure)
    if not final.empty:
        means = final.groupby("run_id")[
            ["normalized_effective_rank", "normalized_effective_sparsity"]
        ].mean()
        means.columns = ["erank", "esparsity"]
        out = out.merge(means, left_on="run_id", right_index=True, how="left")
    else:
        out["erank"] = np.nan
        out["esparsity"] = np.nan
    rob = tables.robustness
    if not rob.empty:
        rows = [
            (run_id, attack, norm, curve_area(g["epsilon"].to_numpy(), g["fooling_ratio"].to_numpy()))
            for (run_id, attack, norm), g in rob.groupby(["run_id", "attack", "norm"])
        ]
        areas = pd.DataFrame(rows, columns=["run_id", "attack", "norm", "area"])
        areas["name"] = "fr_auc_" + areas["attack"].astype(str) + "_" + areas["norm"].astype(str)
        wide = areas.pivot_table(index="run_id", columns="name", values="area")
        out = out.merge(wide, left_on="run_id", right_index=True, how="left")
    sc = tables.scalars
    if not sc.empty:
        wide = sc.pivot_table(index="run_id", columns="name", values="value", aggfunc="mean")
        out = out.merge(wide, left_on="run_id", right_index=True, how="left")
    return out.reset_index(drop=True)


def select_lambdas(summary: pd.DataFrame, tolerance: float = LAMBDA_TOLERANCE) -> pd.DataFrame:
    """The λ grid per (dataset, model, regularizer) with mean accuracy and the chosen setting.

    Columns: dataset, model, method, lambda_l1, lambda_nuclear, clean_accuracy (mean over seeds),
    natural_accuracy, seeds, qualifies, selected, fallback (no λ qualified).
    """
    cols = ["dataset", "model", "method", "lambda_l1", "lambda_nuclear", "clean_accuracy",
            "natural_accuracy", "seeds", "qualifies", "selected", "fallback"]
    reg = summary[summary["method"].isin(REGULARIZED)]
    if reg.empty:
        return pd.DataFrame(columns=cols)
    natural = (summary[summary["method"] == "natural"]
               .groupby(["dataset", "model"])["clean_accuracy"].mean().rename("natural_accuracy"))
    grid = (reg.groupby(["dataset", "model", "method", "lambda_l1", "lambda_nuclear"])
            .agg(clean_accuracy=("clean_accuracy", "mean"), seeds=("seed", "nunique"))
            .reset_index())
    grid = grid.merge(natural, left_on=["dataset", "model"], right_index=True, how="left")
    grid["qualifies"] = grid["clean_accuracy"] >= grid["natural_accuracy"] - tolerance
    grid["selected"] = False
    grid["fallback"] = False
    grid = grid.sort_values(["dataset", "model", "method", "lambda_nuclear", "lambda_l1"])
    for _, group in grid.groupby(["dataset", "model", "method"]):
        ok = group[group["qualifies"]]
        if len(ok):
            grid.loc[ok.index[-1], "selected"] = True
        else:
            best = group["clean_accuracy"].idxmax()
            grid.loc[best, ["selected", "fallback"]] = True
    return grid[cols].reset_index(drop=True)


def comparison_runs(summary: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """Runs entering the comparisons: natural, adversarial, and each regularizer at its chosen λ."""
    base = summary[~summary["method"].isin(REGULARIZED)]
    keys = ["dataset", "model", "method", "lambda_l1", "lambda_nuclear"]
    chosen = selection.loc[selection["selected"].astype(bool), keys]
    reg = summary.merge(chosen, on=keys) if len(chosen) else summary.iloc[:0]
    return pd.concat([base, reg], ignore_index=True)
