"""C5: does cutting a natural network's rank to the adversarial net's make it as robust?

:func:`evaluate_c5` reads the intervention tables (whole-model SVD truncations, layer "all") and
compares a *measured* truncation (no interpolation) with the adversarially trained network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from rankrobust.experiments.margins import DEFAULT_MARGINS, Margins
from rankrobust.report.contrasts import Arm, Context, contrast, pair
from rankrobust.report.frontier import interpolate_path
from rankrobust.report.rows import CLAIM_COLUMNS, margin_for, row, void
from rankrobust.report.stats import NOT_TESTABLE, RESAMPLES
from rankrobust.report.summary import NATURAL, family, method_label, methods_of_kind

RANK_TOLERANCE = 0.02  # a truncation within ±2 % of the target effective rank


def _match_rank(natural: pd.DataFrame, target: float, tolerance: float) -> float:
    """Robust accuracy of the natural net's measured truncation nearest ``target`` erank, if it
    lies within ±``tolerance`` (relative); NaN otherwise (no interpolation)."""
    gap = (natural["normalized_effective_rank"] - target).abs()
    if gap.empty or not math.isfinite(target) or gap.min() > tolerance * abs(target):
        return math.nan
    return float(natural["robust_accuracy"].to_numpy(float)[int(np.argmin(gap.to_numpy(float)))])


def _c5_arms(group: pd.DataFrame, adv: str, tolerance: float) -> tuple[dict[object, float], ...]:
    """Per seed: truncated natural at adv's rank, adv, natural read at adv's clean accuracy."""
    natural = group[group["method"] == NATURAL]
    full = group[(group["method"] == adv) & (group["keep"] == 1.0)]
    truncated: dict[object, float] = {}
    reference: dict[object, float] = {}
    at_clean: dict[object, float] = {}
    for seed, own in full.groupby("seed"):
        nat = natural[natural["seed"] == seed]
        if nat.empty:
            continue
        reference[seed] = float(own["robust_accuracy"].mean())
        truncated[seed] = _match_rank(nat, float(own["normalized_effective_rank"].mean()), tolerance)
        if "clean_accuracy" in nat and nat["clean_accuracy"].notna().all():
            at_clean[seed] = interpolate_path(nat["clean_accuracy"], nat["robust_accuracy"],
                                              float(own["clean_accuracy"].mean()))
    return truncated, reference, at_clean


def _seed_arm(values: Mapping[object, float], n: float) -> Arm | None:
    kept = {k: v for k, v in values.items() if math.isfinite(v)}
    if not kept:
        return None
    seeds = tuple(sorted(kept, key=str))
    return Arm(seeds, np.array([kept[k] for k in seeds]), n=n)


def evaluate_c5(interventions: pd.DataFrame, *, margins: Margins | None = None,
                tolerance: float = RANK_TOLERANCE, resamples: int = RESAMPLES) -> pd.DataFrame:
    """C5 rows (:data:`CLAIM_COLUMNS`) from the intervention tables (runs' identity merged in).

    Per (dataset, model, attack, norm, ε) and adversarial method: each seed's natural network
    truncated (whole-model SVD, layer "all") at the measured keep level whose mean normalized
    effective rank is within ±``tolerance`` (relative) of the adversarial net's, against that
    net under the same attack (effect truncated − adversarial, claimed < 0). No interpolation,
    and every seed needs its measured match (keeping only the seeds that happen to match would
    select them by outcome): otherwise the row says "not measured at this keep grid". Where
    adversarial training did not lower the rank below natural's untruncated one, the row is
    "not testable". A secondary row reads the natural net's
    truncation path at the adversarial net's clean accuracy (linear in clean accuracy).
    """
    rows: list[dict[str, object]] = []
    if interventions.empty:
        return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    margins = margins or DEFAULT_MARGINS
    svd = interventions[(interventions["intervention"] == "svd") & (interventions["layer"] == "all")]
    ctx = Context(sorted(svd["seed"].unique(), key=str), None, resamples)
    for (dataset, model, attack, norm, eps), group in svd.groupby(
            ["dataset", "model", "attack", "norm", "epsilon"]):
        scope = f"{dataset} · {model} ({family(str(model))})"
        metric = f"robust accuracy, {attack} ℓ{'∞' if norm == 'inf' else norm} ε={eps:g}"
        n = float(group["n"].min()) if "n" in group and group["n"].notna().any() else math.nan
        nat_full = group[(group["method"] == NATURAL) & (group["keep"] == 1.0)]
        for adv in reversed(methods_of_kind("adversarial")):
            full = group[(group["method"] == adv) & (group["keep"] == 1.0)]
            if nat_full.empty or full.empty:
                continue
            comparison = (f"{method_label(NATURAL)} truncated to {method_label(adv)}'s erank − "
                          f"{method_label(adv)}")
            rank_adv = float(full["normalized_effective_rank"].mean())
            rank_nat = float(nat_full["normalized_effective_rank"].mean())
            if not rank_adv < rank_nat:
                rows.append(void("C5", scope, metric, comparison, NOT_TESTABLE,
                                 f"{method_label(adv)}'s effective rank {rank_adv:.3f} is not lower "
                                 f"than natural's {rank_nat:.3f}: no truncation needed"))
                continue
            truncated, reference, at_clean = _c5_arms(group, adv, tolerance)
            ref = _seed_arm(reference, n)
            for values, name, role in ((truncated, comparison, "primary"),
                                       (at_clean, f"{method_label(NATURAL)} truncated to "
                                        f"{method_label(adv)}'s clean accuracy − {method_label(adv)}",
                                        "secondary")):
                arm = _seed_arm(values, n)
                if arm is None or ref is None or len(arm.seeds) < len(reference):
                    missing = len(reference) - (len(arm.seeds) if arm is not None else 0)
                    why = (f"not measured at this keep grid ({missing} of {len(reference)} seeds "
                           f"have no truncation within ±{100 * tolerance:g} % of the target rank)"
                           if role == "primary" else
                           f"{missing} of {len(reference)} seeds' truncation paths do not reach "
                           "the adversarial net's clean accuracy")
                    rows.append(void("C5", scope, metric, name, NOT_TESTABLE, why, role))
                    continue
                arm, paired_ref = pair([arm, ref])
                eff = contrast([(1.0, arm), (-1.0, paired_ref)], ctx, True, paired_ref.mean)
                rows.append(row("C5", scope, metric, name, eff, -1,
                                margin_for(margins, "robustness", paired_ref), role=role,
                                means=(arm.mean, paired_ref.mean)))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
