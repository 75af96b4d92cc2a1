"""Score a whole study: :func:`score_claims` turns the stored tables into the claims table.

Steps (each stated in :class:`ClaimsResult.notes` for the report):

1. Completed runs only; runs flagged collapsed (run scalar ``collapsed`` = 1) are left out of
   every verdict row and the frontier, counted per scope.
2. ε_train per (dataset, model) (:func:`rankrobust.report.frontier.eps_train_of`); the primary
   attack: the strongest with a curve up to ε_train; the robust-accuracy area of every run.
   Adversarial arms use their runs trained at ε_train.
3. λ chosen by the report's rule (:func:`rankrobust.report.summary.select_lambdas`) for the plain
   rows; every setting (the frontier) for the matched-accuracy rows.
4. Structure (C1) of W and, where stored, of W − W₀
   (:func:`rankrobust.report.summary.structure_families`, read by ``run_summary``).
5. The models' parameter counts and the capacity-matched FC ↔ CNN pairs C3 is scored on
   (:mod:`rankrobust.report.capacity`).
6. Rows of C1–C4, C6 (:func:`rankrobust.report.claims.evaluate_claims`) and C5
   (:func:`rankrobust.report.claims.evaluate_c5`), verdicts per claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from rankrobust.errors import DataError
from rankrobust.experiments.margins import DEFAULT_MARGINS, Margins, margins_from_json
from rankrobust.experiments.store import ResultsStore
from rankrobust.report.capacity import leftover_notes, model_sizes
from rankrobust.report.claims import (
    CLAIM_COLUMNS,
    claim_verdicts,
    evaluate_c5,
    evaluate_claims,
)
from rankrobust.report.frontier import (
    choose_attack,
    eps_train_of,
    frontier,
    params_of,
    point_areas,
    run_areas,
)
from rankrobust.report.stats import RESAMPLES, combine_rules
from rankrobust.report.summary import (
    comparison_runs,
    methods_of_kind,
    primary_attack,
    run_summary,
    select_lambdas,
)
from rankrobust.report.tables import StudyTables

POINT_COLUMNS = ("run_id", "attack", "norm", "point", "eps_min")


@dataclass
class ClaimsResult:
    """Everything the report prints about the claims."""

    rows: pd.DataFrame  # CLAIM_COLUMNS
    verdicts: pd.DataFrame  # claim, statement, rows, verdict, borderline, detail
    margins: pd.DataFrame  # family, scale, factor, rule, source
    rules: list[str]  # how rows combine into a claim's verdict
    notes: list[str] = field(default_factory=list)  # attack choice, approximations, exclusions
    frontier: pd.DataFrame = field(default_factory=pd.DataFrame)  # frontier.FRONTIER_COLUMNS
    areas: pd.DataFrame = field(default_factory=pd.DataFrame)  # per run: run_id, area, fr_area, clean, n
    attack: str | None = None
    eps_train: dict[tuple[str, str], float] = field(default_factory=dict)
    models: pd.DataFrame = field(default_factory=pd.DataFrame)  # capacity.SIZE_COLUMNS


def read_margins(db_path: str) -> Margins:
    """The margins the study declared before its run (the defaults when it declared none)."""
    with ResultsStore(db_path, readonly=True) as store:
        return margins_from_json(store.declared_margins())


def margins_table(margins: Margins) -> pd.DataFrame:
    """The margins as the report prints them."""
    rows = [{"family": fam, "claims": claims, "scale": m.scale, "factor": m.factor,
             "rule": m.text(), "source": margins.source}
            for fam, claims, m in (("robustness", "C2–C6", margins.robustness),
                                   ("structure", "C1", margins.structure))]
    return pd.DataFrame(rows, columns=["family", "claims", "scale", "factor", "rule", "source"])


def _eps(params: object) -> float:
    value = params_of(params).get("eps")
    return float(value) if isinstance(value, (int, float)) else math.nan


def _at_eps_train(runs: pd.DataFrame, eps_train: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Adversarial runs trained at their scope's ε_train (all of a method's runs when none is)."""
    adversarial = set(methods_of_kind("adversarial"))
    keep = pd.Series(True, index=runs.index)
    for (dataset, model, method), g in runs.groupby(["dataset", "model", "method"]):
        target = eps_train.get((str(dataset), str(model)))
        if method not in adversarial or target is None or "method_params" not in g:
            continue
        hit = g["method_params"].map(lambda p, t=target: math.isclose(_eps(p), t, rel_tol=1e-9))
        if hit.any():
            keep[g.index] = hit
    return runs[keep]


def is_collapsed(summary: pd.DataFrame) -> pd.Series:
    """True for the runs of ``summary`` whose ``collapsed`` scalar is 1 (training collapsed:
    flagged in the run table; left out of the claims, the λ choice and the compared runs)."""
    if "collapsed" not in summary:
        return pd.Series(False, index=summary.index)
    return pd.to_numeric(summary["collapsed"], errors="coerce").fillna(0) >= 0.5


def _collapsed(summary: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple[str, str], str], list[str]]:
    flag = is_collapsed(summary)
    notes: dict[tuple[str, str], str] = {}
    for (dataset, model), g in summary[flag].groupby(["dataset", "model"]):
        notes[(str(dataset), str(model))] = f"{len(g)} collapsed run(s) left out"
    text = [f"{int(flag.sum())} run(s) flagged collapsed are left out of every verdict row and the "
            "frontier."] if flag.any() else []
    return summary[~flag], notes, text


def score_claims(tables: StudyTables, *, points: pd.DataFrame | None = None,
                 margins: Margins | None = None, resamples: int = RESAMPLES,
                 eps_train: float | None = None) -> ClaimsResult:
    """The claims of a study (module docstring). ``points``: per-point minimal budgets
    (:data:`POINT_COLUMNS`) for the hierarchical bootstrap; without them the point level is
    approximated by binomial noise, and a note says so."""
    margins = margins or DEFAULT_MARGINS
    done = tables.completed()
    summary = run_summary(done)
    notes: list[str] = []
    if summary.empty:
        empty = pd.DataFrame(columns=CLAIM_COLUMNS)
        return ClaimsResult(empty, claim_verdicts(empty), margins_table(margins), combine_rules())
    ok, scope_notes, text = _collapsed(summary)
    notes += text
    curves = done.robustness.merge(done.runs[["run_id", "dataset", "model"]], on="run_id") \
        if not done.robustness.empty else done.robustness
    eps = eps_train_of(done.runs, eps_train)
    attack, why = choose_attack(curves, eps) if eps else (None, "no ε_train (no adversarial runs)")
    metrics: list[tuple[str, int]] = []
    point_values: dict[str, pd.DataFrame] = {}
    values = pd.DataFrame(columns=["run_id", "area", "clean"])
    if attack is not None:
        col = f"robust-accuracy area [0, ε_train], {attack}"
        fr_col = f"fooling-ratio area [0, ε_train], {attack}"
        values = run_areas(curves, eps, attack)
        ok = ok.merge(values.rename(columns={"area": col, "fr_area": fr_col, "n": "n_points"}),
                      on="run_id", how="left")
        metrics += [(col, -1), (fr_col, +1)]
        notes.append(why + f" ε_train: {', '.join(f'{d} · {m} {e:g}' for (d, m), e in sorted(eps.items()))}.")
        if points is not None:
            point_values = _point_values(points, curves, eps, attack, done.runs, col)
        notes.append("Intervals: hierarchical bootstrap over seeds, then test points." if point_values
                     else "Intervals: bootstrap over seeds plus binomial point noise (no per-point "
                          "results stored).")
    else:
        notes.append(f"No robust-accuracy area: {why}; the areas over the stored grids are used.")
    fallback = primary_attack(summary)
    if attack is None and fallback is not None:  # areas over the stored grids
        metrics += [(f"ra_auc_{fallback}_inf", -1), (f"fr_auc_{fallback}_inf", +1)]
    paths = frontier(ok, values)  # every setting, ε_train included, collapsed runs left out
    ok = _at_eps_train(ok, eps)
    chosen = comparison_runs(ok, select_lambdas(ok))
    if "clean" in ok:  # matched rows compare clean accuracy on the attack's points
        chosen = chosen.assign(clean_accuracy=chosen["clean"].fillna(chosen["clean_accuracy"]))
        ok = ok.assign(clean_accuracy=ok["clean"].fillna(ok["clean_accuracy"]))
    sizes = model_sizes(done.runs)
    notes += leftover_notes(sizes, sorted(map(str, done.runs["dataset"].unique())))
    rows = evaluate_claims(chosen, metrics=metrics, points=point_values, margins=margins,
                           resamples=resamples, paths=ok, scope_notes=scope_notes, sizes=sizes)
    interventions = done.interventions
    if not interventions.empty:
        info = ok[["run_id", "dataset", "model", "method", "seed"]]
        drop = [c for c in ("dataset", "model", "method", "seed") if c in interventions]
        interventions = interventions.drop(columns=drop).merge(info, on="run_id")
    rows = pd.concat([rows, evaluate_c5(interventions, margins=margins, resamples=resamples)],
                     ignore_index=True)
    return ClaimsResult(rows, claim_verdicts(rows), margins_table(margins), combine_rules(), notes,
                        paths, values, attack, eps, sizes)


def _point_values(points: pd.DataFrame, curves: pd.DataFrame, eps: dict[tuple[str, str], float],
                  attack: str, runs: pd.DataFrame, col: str) -> dict[str, pd.DataFrame]:
    missing = [c for c in POINT_COLUMNS if c not in points]
    if missing:
        raise DataError(f"per-point results lack column {missing[0]!r} (need {', '.join(POINT_COLUMNS)})")
    emin = pd.to_numeric(points["eps_min"], errors="coerce")
    if bool((emin < 0).any()) or bool((points["eps_min"].notna() & emin.isna()).any()):
        raise DataError("per-point results: eps_min must be a budget ≥ 0 or empty (never broken)")
    joined = points.merge(runs[["run_id", "dataset", "model"]], on="run_id")
    per = point_areas(joined, curves, eps, attack)
    if per.empty:
        return {}
    return {col: per[["run_id", "point"]].assign(value=per["area"]),
            "clean_accuracy": per[["run_id", "point"]].assign(value=per["clean"])}
