"""One row of the claims table: its columns, its verdict (rules of :mod:`rankrobust.report.stats`)
and the margin in force (:mod:`rankrobust.experiments.margins`).

Columns (:data:`CLAIM_COLUMNS`): claim; scope (dataset · model (family)); metric; comparison
(A − B); role ("primary": enters the claim's verdict, "secondary": shown only); effect, ci_low,
ci_high (95 % bootstrap percentile interval); t_low, t_high (Student t over per-seed effects);
relative (effect ÷ |reference arm's mean|); n (seeds); se_point (point-level standard error);
margin (the equivalence margin in the metric's units); test (how the interval was computed);
verdict; small (the CI excludes 0 but lies inside ±margin); borderline (the CI edge nearer 0 lies
within one se_point of 0); note (why a row is void, exclusions).
"""

from __future__ import annotations

import math

from rankrobust.experiments.margins import Margins
from rankrobust.report.contrasts import Arm
from rankrobust.report.stats import (
    FAILS,
    HOLDS,
    NOT_MEASURABLE,
    NOT_TESTABLE,
    Effect,
    at_bound,
    is_borderline,
    is_small,
    verdict,
)

CLAIM_COLUMNS = ["claim", "scope", "metric", "comparison", "role", "effect", "ci_low", "ci_high",
                 "t_low", "t_high", "relative", "n", "se_point", "margin", "test", "verdict",
                 "small", "borderline", "note"]


def row(claim: str, scope: str, metric: str, comparison: str, eff: Effect, direction: int,
        margin: float, *, role: str = "primary", means: tuple[float, float] | None = None,
        note: str = "", forced: str | None = None) -> dict[str, object]:
    """One claims row; ``means`` (both arms' rates) trigger the floor/ceiling rule."""
    if forced is not None:
        v = forced
    elif means is not None and all(math.isfinite(m) for m in means) and at_bound(*means):
        v = NOT_MEASURABLE
        note = "; ".join(filter(None, [note, f"both arms at the floor or ceiling "
                                             f"({means[0]:.3f}, {means[1]:.3f})"]))
    else:
        v = verdict(eff, direction, margin if math.isfinite(margin) else 0.0)
    small = v in (HOLDS, FAILS) and is_small(eff, margin)
    return {"claim": claim, "scope": scope, "metric": metric, "comparison": comparison,
            "role": role, "effect": eff.estimate, "ci_low": eff.ci_low, "ci_high": eff.ci_high,
            "t_low": eff.t_low, "t_high": eff.t_high, "relative": eff.relative, "n": eff.n,
            "se_point": eff.se_point, "margin": margin, "test": eff.test, "verdict": v,
            "small": small, "borderline": v not in (NOT_MEASURABLE, NOT_TESTABLE) and is_borderline(eff),
            "note": note}


def void(claim: str, scope: str, metric: str, comparison: str, v: str, note: str,
         role: str = "primary") -> dict[str, object]:
    """A row with no effect (verdict ``v``: not testable, ...) and the reason in its note."""
    return row(claim, scope, metric, comparison, Effect(math.nan, math.nan, math.nan, 0, "–"),
               +1, math.nan, role=role, note=note, forced=v)


def margin_for(margins: Margins, fam: str, reference: Arm | None) -> float:
    """The margin of a row of family ``fam`` whose reference arm is ``reference``."""
    if reference is None:
        return math.nan
    m = margins.structure if fam == "structure" else margins.robustness
    return m.value(reference.mean, reference.n)
