"""Rank correlation of robustness with weight structure across runs (Spearman's ρ).

ρ is Pearson's correlation of the ranks (ties get their mean rank), with scipy's two-sided
p-value; pairs where either value is not finite are left out, and so are degenerate runs
(clean accuracy near chance, ``summary["degenerate"]``): a constant model is "robust" by the
fooling ratio without any structure to thank for it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from rankrobust.report.claims import robustness_metrics


def spearman(x: pd.Series, y: pd.Series) -> tuple[float, float, int]:
    """Spearman's ρ, its two-sided p-value and n over the pairs where both are finite (NaN ρ
    for fewer than 3 pairs or a constant side)."""
    mask = np.isfinite(x.to_numpy(float)) & np.isfinite(y.to_numpy(float))
    n = int(mask.sum())
    if n < 3 or np.unique(x[mask]).size < 2 or np.unique(y[mask]).size < 2:
        return float("nan"), float("nan"), n
    res = stats.spearmanr(x[mask], y[mask])
    return float(res.statistic), float(res.pvalue), n


def healthy(summary: pd.DataFrame) -> pd.DataFrame:
    """The runs that enter a correlation: all but the degenerate ones."""
    return summary[~summary["degenerate"].astype(bool)] if "degenerate" in summary else summary


def spearman_table(summary: pd.DataFrame, attack: str) -> pd.DataFrame:
    """ρ of each robustness metric of ``attack`` (and DeepFool's ρ_adv) against the mean
    normalized effective rank, over the healthy runs."""
    rows = []
    runs = healthy(summary)
    for col in (*(m for m, _ in robustness_metrics(attack)), "rho_adv"):
        if col in summary.columns and "erank" in summary.columns:
            rho, p, n = spearman(runs["erank"], runs[col])
            rows.append({"robustness": col, "vs": "mean normalized erank", "spearman_rho": rho,
                         "p_value": p, "n_runs": n})
    return pd.DataFrame(rows, columns=["robustness", "vs", "spearman_rho", "p_value", "n_runs"])
