"""What a results database cannot give the report: the stored data each rule of issue #18
needs, and the fallback the report takes where it is missing, as sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rankrobust.attacks.registry import attack_label
from rankrobust.report.context import Context

AUTOATTACK = "autoattack"


def _autoattack_grid(ctx: Context) -> str | None:
    """A sentence when AutoAttack was not stored as a curve up to ε_train."""
    linf = ctx.curves[(ctx.curves["norm"] == "inf")] if not ctx.curves.empty else ctx.curves
    auto = linf[linf["attack"] == AUTOATTACK] if not linf.empty else linf
    used = ctx.scored.attack
    if used == AUTOATTACK or linf.empty:
        return None
    fallback = (f"the robust-accuracy area is read off the {attack_label(used, 'inf')} curve"
                if used else "no robust-accuracy area can be formed")
    if auto.empty:
        return f"No AutoAttack results stored: {fallback}."
    budgets = auto[auto["epsilon"] > 0].groupby("run_id")["epsilon"].nunique()
    most = int(budgets.max()) if len(budgets) else 0
    return (f"No ε-grid AutoAttack: AutoAttack was stored at {most} budget(s) per run, not over "
            f"the grid ¼, ½, ¾, 1 × ε_train, so {fallback}; AutoAttack enters the robust-accuracy "
            "table and the attack gaps only (where a weaker attack overstates robust accuracy, "
            "the area does too).")


def database_limits(ctx: Context) -> list[str]:
    """What this database cannot give, and what the report does instead (empty: nothing
    missing)."""
    out: list[str] = []
    grid = _autoattack_grid(ctx)
    if grid:
        out.append(grid)
    if ctx.done.points.empty:
        out.append("No per-point results (minimal ℓ∞ perturbation per test point): the "
                   "intervals resample seeds and add binomial noise for the test points instead "
                   "of resampling the points themselves, and the distribution of minimal "
                   "perturbations is not drawn.")
    delta = ctx.scored.rows["metric"].astype(str).str.contains("W − W₀") if len(ctx.scored.rows) \
        else pd.Series(dtype=bool)
    if not bool(delta.any()):
        out.append("No structure of W − W₀ stored: C1 measures the final weights W only, which "
                   "stay near their initialization after few epochs.")
    if (ctx.scored.margins["source"] != "declared").any():
        out.append("The study declared no equivalence margins before its run: the defaults "
                   "(**Declared margins**) are used.")
    if ctx.interventions.empty:
        out.append("No intervention tables stored: C5 is not testable.")
    scalars = ctx.done.scalars
    if scalars.empty or not np.isin("collapsed", scalars["name"].astype(str)).any():
        out.append("No run stored a `collapsed` flag: collapsed training is seen only through "
                   "the degenerate (near-chance) rule.")
    return out
