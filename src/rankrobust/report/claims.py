"""The paper's claims C1–C6 as measured effects with 95 % bootstrap intervals.

One **primary metric** per claim (its rows decide the verdict; ``role`` = "primary"):

- C1 (adversarial − natural training, claimed < 0): the mean over layers of the normalized
  effective rank erank(W)/min(m, n) and effective sparsity esparsity(W)/(m·n) of the final
  weights W, and, where the study recorded it, of W − W₀ (change from the initialization).
- C2–C4, C6: the robust-accuracy **area** over [0, ε_train] of the primary attack
  (:mod:`rankrobust.report.frontier`), higher = more robust. C2: ℓ1+nuclear − natural (> 0);
  C3: the C2 gain of the CNN − the FC network of each capacity-matched pair (> 0;
  :mod:`rankrobust.report.capacity`); C4: ℓ1+nuclear − each adversarial method (< 0),
  plainly and at matched clean accuracy (ℓ1+nuclear's λ path read at the adversarial net's
  clean accuracy); C6: at matched clean accuracy, ℓ1+nuclear − weight decay (> 0: its gain over
  natural exceeds weight decay's; the natural arm cancels).
- C5 (:func:`evaluate_c5`): the natural network truncated to the adversarial net's effective
  rank − the adversarial net, in robust accuracy (< 0).

Secondary rows (``role`` = "secondary", not counted): the fooling ratio (the paper's metric),
C3's gain relative to natural's mean, C5 at matched clean accuracy, C6 at the chosen λ.

Intervals, verdicts, margins and the combination rules: :mod:`rankrobust.report.stats` and
:mod:`rankrobust.experiments.margins`. Whole studies are scored by
:func:`rankrobust.report.scoring.score_claims`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from rankrobust.experiments.margins import DEFAULT_MARGINS, Margins
from rankrobust.methods.l1_nuclear import L1Nuclear
from rankrobust.report.capacity import capacity_pairs, unmatched_note
from rankrobust.report.contrasts import (
    Arm,
    Context,
    PathPoint,
    contrast,
    index_points,
    make_arm,
    matched,
    pair,
)
from rankrobust.report.rows import CLAIM_COLUMNS, margin_for, row, void
from rankrobust.report.stats import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NEGLIGIBLE,
    NOT_MEASURABLE,
    NOT_TESTABLE,
    RESAMPLES,
    VERDICTS,
    Effect,
    at_bound,
    combine,
    t_interval,
    verdict,
)
from rankrobust.report.summary import NATURAL, family, method_label, methods_of_kind
from rankrobust.report.truncation import RANK_TOLERANCE, evaluate_c5

__all__ = ["CLAIM_COLUMNS", "CLAIM_TEXT", "COMBINED", "Effect", "FAILS", "HOLDS", "INCONCLUSIVE",
           "NEGLIGIBLE", "NOT_MEASURABLE", "NOT_TESTABLE", "RANK_TOLERANCE", "VERDICTS", "WEIGHT_DECAY",
           "claim_verdicts", "combine", "evaluate_c5", "evaluate_claims",
           "robustness_metrics", "t_interval", "verdict"]

COMBINED = L1Nuclear.name  # the paper's structured regularizer (C2–C4, C6)
WEIGHT_DECAY = "weight-decay"  # the control of C6
CLEAN = "clean_accuracy"
# methods whose path starts at natural training (λ = 0): every penalty, and weight decay
PENALTIES = frozenset([*methods_of_kind("regularized"), WEIGHT_DECAY])

CLAIM_TEXT = {
    "C1": "adversarial training lowers effective rank and effective sparsity vs natural training",
    "C2": "ℓ1 + nuclear-norm regularization raises robustness (robust-accuracy area over "
          "[0, ε_train]) vs natural training",
    "C3": "the C2 gain is larger for CNNs than for fully connected networks",
    "C4": "ℓ1 + nuclear-norm regularization stays short of adversarial training, also at the "
          "same clean accuracy",
    "C5": "truncating a naturally trained network's rank to the level adversarial training "
          "reaches does not make it as robust",
    "C6": "structure-specific: at the same clean accuracy, ℓ1 + nuclear's robustness gain over "
          "natural training exceeds weight decay's",
}
EMPTY_REASON = {"C3": "no dataset with an FC and a CNN model that both have natural and "
                      "ℓ1+nuclear runs",
                "C5": "no intervention tables of natural and adversarial runs",
                "C6": "no weight-decay runs"}
# C1 metrics: (column of the runs table, label); absent columns are skipped
STRUCTURE_METRICS = (("erank", "mean normalized effective rank of W"),
                     ("esparsity", "mean normalized effective sparsity of W"),
                     ("delta_erank", "mean normalized effective rank of W − W₀"),
                     ("delta_esparsity", "mean normalized effective sparsity of W − W₀"))


def robustness_metrics(attack: str, norm: str = "inf") -> list[tuple[str, int]]:
    """[(fooling-ratio area, +1), (robust-accuracy area, −1)] of ``attack`` (sign +1: lower =
    more robust). In :func:`evaluate_claims` the −1 metric is primary, the +1 one secondary."""
    return [(f"fr_auc_{attack}_{norm}", +1), (f"ra_auc_{attack}_{norm}", -1)]


class _Scorer:
    """Row builders sharing the runs, per-point values, margins and per-dataset resamplers."""

    def __init__(self, runs: pd.DataFrame, points: Mapping[str, pd.DataFrame], margins: Margins,
                 resamples: int, paths: pd.DataFrame | None, notes: Mapping[tuple[str, str], str]) -> None:
        self.runs, self.margins, self.paths = runs, margins, paths
        self.points = {col: index_points(frame) for col, frame in points.items()}
        self.notes = notes
        self.contexts: dict[str, Context] = {}
        every = pd.concat([runs, paths]) if paths is not None else runs
        for dataset, group in every.groupby("dataset"):
            ids = set(group["run_id"].astype(str)) if "run_id" in group else set()
            pts = sorted({int(p) for per_run in self.points.values() for rid, values in per_run.items()
                          if rid in ids for p in values.index})
            self.contexts[str(dataset)] = Context(sorted(every["seed"].unique()), pts or None, resamples)

    def arm(self, dataset: str, model: str, method: str, column: str) -> Arm | None:
        """The comparison runs of ``method`` in (dataset, model) on ``column``."""
        f = self.runs
        sel = f[(f["dataset"] == dataset) & (f["model"] == model) & (f["method"] == method)]
        return make_arm(sel, column, self.points.get(column), "n_points")

    def note(self, dataset: str, model: str) -> str:
        return self.notes.get((dataset, model), "")

    def paired(self, claim: str, scope: str, metric: str, comparison: str, a: Arm | None,
               b: Arm | None, direction: int, fam: str, dataset: str, role: str = "primary",
               note: str = "") -> dict[str, object] | None:
        """The row of a − b (paired on seeds and points), claimed sign ``direction``."""
        if a is None or b is None:
            return None
        a, b = pair([a, b])
        rate = fam == "robustness"
        eff = contrast([(1.0, a), (-1.0, b)], self.contexts[dataset], rate, b.mean)
        return row(claim, scope, metric, comparison, eff, direction, margin_for(self.margins, fam, b),
                   role=role, means=(a.mean, b.mean) if rate else None, note=note)

    def path(self, dataset: str, model: str, method: str, column: str) -> list[PathPoint]:
        """The method's settings (by method_params) as path points, from the frontier runs; a
        penalty's path starts at λ = 0, natural training (added when the method has runs)."""
        if self.paths is None:
            return []
        f = self.paths
        sel = f[(f["dataset"] == dataset) & (f["model"] == model) & (f["method"] == method)]
        if len(sel) and method in PENALTIES:
            sel = pd.concat([sel, f[(f["dataset"] == dataset) & (f["model"] == model)
                                    & (f["method"] == NATURAL)].assign(method_params="natural")])
        out = []
        params = sel.get("method_params", pd.Series("{}", index=sel.index))
        keys = params.map(lambda p: p if isinstance(p, str) else json.dumps(p, sort_keys=True))
        for _, g in sel.groupby(keys):
            area = make_arm(g, column, self.points.get(column), "n_points")
            clean = make_arm(g, CLEAN, self.points.get(CLEAN), "n_points")
            if area is not None and clean is not None:
                area, clean = pair([area, clean])
                out.append(PathPoint(area, clean))
        return out


def evaluate_claims(runs: pd.DataFrame, *, metrics: list[tuple[str, int]],
                    points: Mapping[str, pd.DataFrame] | None = None,
                    margins: Margins | None = None, resamples: int = RESAMPLES,
                    paths: pd.DataFrame | None = None,
                    scope_notes: Mapping[tuple[str, str], str] | None = None,
                    sizes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Claims rows C1–C4 and C6 (:data:`CLAIM_COLUMNS`) from the comparison runs.

    ``runs``: one row per run (dataset, model, method, seed, run_id, the metric columns,
    ``clean_accuracy``, optionally ``n_points``: the test points a rate was measured on).
    ``metrics``: [(column, s)], s = −1 where higher = more robust (robust-accuracy area: the
    primary metric), s = +1 where lower = more robust (fooling ratio: secondary).
    ``points``: per-point values per column (run_id, point,
    value), for the hierarchical bootstrap (also key ``clean_accuracy``: 1/0 per point).
    ``paths``: every run of every setting (the frontier), for the matched-accuracy rows of C4
    and C6; without it those rows are left out. ``scope_notes``: (dataset, model) → a note
    added to that scope's rows (e.g. collapsed runs left out). ``sizes``: the models' parameter
    counts (:func:`rankrobust.report.capacity.model_sizes`): C3 is scored per capacity-matched
    pair; without them no pair is matched and C3 says so.
    """
    # the primary metric: the first where higher = more robust, else the only kind there is
    primary = next((c for c, sign in metrics if sign < 0), metrics[0][0] if metrics else None)
    s = _Scorer(runs, points or {}, margins or DEFAULT_MARGINS, resamples, paths, scope_notes or {})
    rows: list[dict[str, object] | None] = []
    label, adversarial = method_label, methods_of_kind("adversarial")
    combined, natural = label(COMBINED), label(NATURAL)
    pairs = runs[["dataset", "model"]].drop_duplicates().sort_values(["dataset", "model"])
    for dataset, model in pairs.itertuples(index=False):
        scope, note = f"{dataset} · {model} ({family(model)})", s.note(dataset, model)
        for adv in adversarial:
            for col, name in STRUCTURE_METRICS:
                rows.append(s.paired("C1", scope, name, f"{label(adv)} − {natural}",
                                     s.arm(dataset, model, adv, col), s.arm(dataset, model, NATURAL, col),
                                     -1, "structure", dataset, note=note))
        for col, sign in metrics:
            role = "primary" if col == primary else "secondary"
            reg = s.arm(dataset, model, COMBINED, col)
            rows.append(s.paired("C2", scope, col, f"{combined} − {natural}", reg,
                                 s.arm(dataset, model, NATURAL, col), -sign, "robustness", dataset,
                                 role, note))
            for adv in reversed(adversarial):  # strongest first
                rows.append(s.paired("C4", scope, col, f"{combined} − {label(adv)}", reg,
                                     s.arm(dataset, model, adv, col), sign, "robustness", dataset,
                                     role, note))
                if col == primary:
                    rows.append(_matched_c4(s, dataset, model, adv, col, scope, note))
            if col == primary:
                rows += _c6(s, dataset, model, col, scope, note)
    for dataset in sorted(runs["dataset"].unique()) if len(runs) else []:
        for col, sign in metrics:
            rows += _c3(s, str(dataset), col, sign, col == primary, sizes)
    table = pd.DataFrame([r for r in rows if r is not None], columns=CLAIM_COLUMNS)
    order = {c: i for i, c in enumerate(CLAIM_TEXT)}
    return table.sort_values("claim", key=lambda x: x.map(order), kind="stable").reset_index(drop=True)


def _matched_c4(s: _Scorer, dataset: str, model: str, adv: str, col: str, scope: str,
                note: str) -> dict[str, object] | None:
    """ℓ1+nuclear's λ path read at the adversarial net's clean accuracy − the adversarial net."""
    ref_area, ref_clean = s.arm(dataset, model, adv, col), s.arm(dataset, model, adv, CLEAN)
    path = s.path(dataset, model, COMBINED, col)
    if ref_area is None or ref_clean is None or not path:
        return None
    ref_area, ref_clean = pair([ref_area, ref_clean])
    eff, why = matched(PathPoint(ref_area, ref_clean), path, s.contexts[dataset], +1)
    comparison = f"{method_label(COMBINED)} − {method_label(adv)} at {method_label(adv)}'s clean accuracy"
    if why:
        return void("C4", scope, f"{col} at matched clean accuracy", comparison, NOT_TESTABLE,
                    "; ".join(filter(None, [note, why])))
    return row("C4", scope, f"{col} at matched clean accuracy", comparison, eff, -1,
               margin_for(s.margins, "robustness", ref_area), note=note)


def _c6(s: _Scorer, dataset: str, model: str, col: str, scope: str,
        note: str) -> list[dict[str, object] | None]:
    """C6: ℓ1+nuclear − weight decay, at ℓ1+nuclear's clean accuracy (primary) and plain."""
    comparison = f"{method_label(COMBINED)} − {method_label(WEIGHT_DECAY)}"
    metric = f"{col} at matched clean accuracy"
    reg_area, reg_clean = s.arm(dataset, model, COMBINED, col), s.arm(dataset, model, COMBINED, CLEAN)
    path = s.path(dataset, model, WEIGHT_DECAY, col)
    if reg_area is None or (not path and s.arm(dataset, model, WEIGHT_DECAY, col) is None):
        return []  # no weight-decay runs: the claim says "not testable" (claim_verdicts)
    rows: list[dict[str, object] | None] = [
        s.paired("C6", scope, col, comparison + " at the chosen λ", reg_area,
                 s.arm(dataset, model, WEIGHT_DECAY, col), +1, "robustness", dataset, "secondary", note)]
    if reg_clean is None or not path:
        rows.append(void("C6", scope, metric, comparison, NOT_TESTABLE,
                         "; ".join(filter(None, [note, "no weight-decay path on the frontier"]))))
        return rows
    reg_area, reg_clean = pair([reg_area, reg_clean])
    eff, why = matched(PathPoint(reg_area, reg_clean), path, s.contexts[dataset], -1)
    full = comparison + f" at {method_label(COMBINED)}'s clean accuracy"
    rows.append(void("C6", scope, metric, full, NOT_TESTABLE, "; ".join(filter(None, [note, why])))
                if why else row("C6", scope, metric, full, eff, +1,
                                margin_for(s.margins, "robustness", reg_area), note=note))
    return rows


def _c3(s: _Scorer, dataset: str, col: str, sign: int, primary: bool,
        sizes: pd.DataFrame | None) -> list[dict[str, object] | None]:
    """C3 per capacity-matched pair (:mod:`rankrobust.report.capacity`): the C2 gain of the
    pair's CNN minus its FC network's, absolute and relative. Without a matched pair, a void
    primary row saying so, and the family-mean contrast as secondary rows."""
    arms: dict[str, tuple[Arm, Arm]] = {}
    for model in sorted(s.runs.loc[s.runs["dataset"] == dataset, "model"].unique()):
        reg, nat = s.arm(dataset, model, COMBINED, col), s.arm(dataset, model, NATURAL, col)
        if reg is not None and nat is not None:
            reg, nat = pair([reg, nat])
            arms[str(model)] = (reg, nat)
    fams = {m: family(m) for m in arms}
    if not {"FC", "CNN"} <= set(fams.values()):
        return []
    role = "primary" if primary else "secondary"
    known = sizes if sizes is not None else pd.DataFrame(
        {"dataset": dataset, "model": list(arms), "family": list(fams.values()),
         "parameters": math.nan})
    matched, others = capacity_pairs(known, dataset, set(arms))
    rows: list[dict[str, object] | None] = []
    for p in matched:
        rows += _gain_rows(s, dataset, col, sign, {"FC": [arms[p.fc]], "CNN": [arms[p.cnn]]},
                           p.scope, role, f"capacity-matched: {p.counts()}")
    if matched:
        return rows
    scope = f"{dataset} · CNN vs FC"
    if primary:  # the claim's verdict: not testable, with the counts
        rows.append(void("C3", scope, f"gain in {col}", _c3_comparison(sign) + " of a matched pair",
                         NOT_TESTABLE, unmatched_note(others)))
    terms = {f: [a for m, a in arms.items() if fams[m] == f] for f in ("FC", "CNN")}
    counts = "; ".join(p.counts() for p in others)
    return rows + _gain_rows(s, dataset, col, sign, terms, scope, "secondary",
                             f"not capacity-matched ({counts}): shown, not scored",
                             " (not capacity-matched)")


def _c3_comparison(sign: int) -> str:
    return (f"({method_label(COMBINED)} − {method_label(NATURAL)}) CNN − FC" if sign < 0
            else f"({method_label(NATURAL)} − {method_label(COMBINED)}) CNN − FC")


def _gain_rows(s: _Scorer, dataset: str, col: str, sign: int,
               terms: dict[str, list[tuple[Arm, Arm]]], scope: str, role: str,
               note: str, label: str = "") -> list[dict[str, object] | None]:
    """The C2 gain (reg − nat) of the CNN models minus the FC models' (each family's mean),
    absolute (``role``) and relative to natural's mean (secondary); ``label`` ends the
    comparison's text."""
    direction = -sign  # the gain reg − nat, in "more robust" units
    comparison = _c3_comparison(sign) + label
    rows: list[dict[str, object] | None] = []
    for relative in (False, True):
        weighted: list[tuple[float, Arm]] = []
        for fam, w in (("CNN", 1.0), ("FC", -1.0)):
            k = len(terms[fam])
            for reg, nat in terms[fam]:
                scale = 1.0 / abs(nat.mean) if relative and nat.mean else 1.0
                weighted += [(direction * w * scale / k, reg), (-direction * w * scale / k, nat)]
        nat_arms = [nat for fam in terms for _, nat in terms[fam]]
        eff = contrast(weighted, s.contexts[dataset], True, math.nan)
        ref_mean = float(np.mean([a.mean for a in nat_arms]))
        margin = (s.margins.robustness.value(ref_mean, min(a.n for a in nat_arms)) if not relative
                  else math.nan)
        floor = all(at_bound(r.mean, n.mean) for fam in terms for r, n in terms[fam])
        metric = f"relative gain in {col} (÷ natural's mean)" if relative else f"gain in {col}"
        rows.append(row("C3", scope, metric, comparison + (", relative" if relative else ""), eff,
                        +1, margin, role="secondary" if relative else role,
                        forced=NOT_MEASURABLE if floor else None,
                        note="; ".join(filter(None, [note, "every model's arms at the floor or "
                                                     "ceiling" if floor else ""]))))
    return rows


def claim_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: claim, statement, rows (primary rows), verdict (:func:`combine` over
    the primary rows, " (borderline)" appended when one of them is), borderline (count), detail
    (the rows' verdicts counted; the first row's reason where none is testable)."""
    out = []
    for claim, text in CLAIM_TEXT.items():
        sub = table[table["claim"] == claim]
        if "role" in sub:
            sub = sub[sub["role"] != "secondary"]
        verdicts = sub["verdict"].tolist()
        result = combine(verdicts) if verdicts else NOT_TESTABLE
        border = int(sub["borderline"].fillna(False).astype(bool).sum()) if "borderline" in sub else 0
        counts = pd.Series(verdicts, dtype=object).value_counts()
        detail = ", ".join(f"{k} {v}" for k, v in counts.items()) or \
            f"no rows: {EMPTY_REASON.get(claim, 'no runs to compare')}"
        why = str(sub["note"].fillna("").iloc[0]).split("; ")[0] if "note" in sub and len(sub) else ""
        if set(verdicts) == {NOT_TESTABLE} and why:  # say why
            detail += f": {why}"
        out.append({"claim": claim, "statement": text, "rows": len(sub),
                    "verdict": result + (" (borderline)" if border else ""),
                    "borderline": border, "detail": detail})
    return pd.DataFrame(out, columns=["claim", "statement", "rows", "verdict", "borderline", "detail"])
