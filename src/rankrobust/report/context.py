"""Everything a report section reads, computed once from the stored tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rankrobust.experiments.margins import Margins
from rankrobust.report.epochs import at_selected_epoch, mark_selected
from rankrobust.report.scoring import ClaimsResult, is_collapsed, score_claims
from rankrobust.report.stats import RESAMPLES
from rankrobust.report.summary import (
    comparison_runs,
    primary_attack,
    run_summary,
    select_lambdas,
    weight_rows,
)
from rankrobust.report.tables import StudyTables

PIPELINE_VERDICT = "– (pipeline check)"


@dataclass
class Context:
    """The study as the sections see it. ``done``: complete runs only; the figure frames carry
    the runs' identity (dataset, model, method, seed) and hold the comparison runs (``chosen``)
    except ``structure``, ``curves`` (robustness), ``interventions``, ``points`` and
    ``frontier``, which hold every complete run."""

    tables: StudyTables
    done: StudyTables
    source: str
    figure_dir: Path
    summary: pd.DataFrame
    selection: pd.DataFrame
    chosen: pd.DataFrame
    attack: str
    claims: pd.DataFrame
    verdicts: pd.DataFrame
    scored: ClaimsResult
    pipeline: bool
    structure: pd.DataFrame
    final: pd.DataFrame
    robustness: pd.DataFrame
    curves: pd.DataFrame
    epochs: pd.DataFrame
    spectra: pd.DataFrame
    interventions: pd.DataFrame
    points: pd.DataFrame
    frontier: pd.DataFrame
    paths: pd.DataFrame


def with_runs(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``frame`` joined with the identity columns of the runs it belongs to (inner join)."""
    if frame.empty:
        return frame
    info = runs[["run_id", "dataset", "model", "method", "seed"]]
    drop = [c for c in ("dataset", "model", "method", "seed") if c in frame.columns]
    return frame.drop(columns=drop).merge(info, on="run_id")


def _of(frame: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    return frame[frame["run_id"].isin(ids)] if not frame.empty else frame


def is_pipeline_check(runs: pd.DataFrame) -> bool:
    """A study on synthetic data only (the smoke preset) checks the pipeline, not the paper."""
    return len(runs) > 0 and set(runs["dataset"].astype(str)) <= {"synthetic"}


def frontier_points(summary: pd.DataFrame, scored: ClaimsResult) -> pd.DataFrame:
    """Every run with its robust-accuracy area (:attr:`ClaimsResult.areas`), clean accuracy on the
    attack's points, the attack and its scope's ε_train: the dots of the frontier figure."""
    columns = ["run_id", "dataset", "model", "method", "seed", "degenerate", "clean_accuracy",
               "area", "attack", "eps_train"]
    if summary.empty or scored.areas.empty or scored.attack is None:
        return pd.DataFrame(columns=columns)
    out = summary.drop(columns=["clean_accuracy"]).merge(
        scored.areas[["run_id", "area", "clean"]].rename(columns={"clean": "clean_accuracy"}),
        on="run_id")
    out["attack"] = scored.attack
    out["eps_train"] = [scored.eps_train.get((str(d), str(m)), float("nan"))
                        for d, m in zip(out["dataset"], out["model"], strict=True)]
    return out[columns]


def study_claims(tables: StudyTables, margins: Margins | None = None,
                 resamples: int = RESAMPLES) -> tuple[ClaimsResult, pd.DataFrame, pd.DataFrame]:
    """The scored claims of ``tables``' completed runs (with the per-point budgets where the
    store keeps them), and their rows and verdicts as the report prints them (claims.csv, also
    what ``rankrobust export`` writes): no verdict on the paper from a pipeline check."""
    done = tables.completed()
    per_point = done.points if not done.points.empty else None
    scored = score_claims(tables, points=per_point, margins=margins, resamples=resamples)
    claims, verdicts = scored.rows.copy(), scored.verdicts.copy()
    if is_pipeline_check(done.runs):  # no verdicts on the paper from synthetic data
        claims["verdict"] = PIPELINE_VERDICT
        claims[["small", "borderline"]] = False
        verdicts["verdict"] = PIPELINE_VERDICT
    return scored, claims, verdicts


def make_context(tables: StudyTables, figure_dir: Path, source: str = "",
                 margins: Margins | None = None, resamples: int = RESAMPLES) -> Context:
    """Summaries, λ choice, claims (:func:`~rankrobust.report.scoring.score_claims`, with the
    per-point budgets where the store keeps them and the study's declared ``margins``) and the
    joined frames of ``tables``."""
    done = tables.completed()
    summary = run_summary(done)
    healthy = summary[~is_collapsed(summary)]  # as the claims: collapsed runs left out
    selection = select_lambdas(healthy)
    chosen = comparison_runs(healthy, selection)
    ids = set(chosen["run_id"])
    attack = primary_attack(summary) or "pgd"
    interventions = with_runs(done.interventions, done.runs)
    scored, claims, verdicts = study_claims(tables, margins, resamples)
    pipeline = is_pipeline_check(done.runs)
    structure = with_runs(weight_rows(done.structure), done.runs)  # W only: no W − W₀ rows
    robustness = with_runs(done.robustness, done.runs)
    return Context(
        tables=tables, done=done, source=source, figure_dir=figure_dir, summary=summary,
        selection=selection, chosen=chosen, attack=attack, claims=claims, verdicts=verdicts,
        scored=scored, pipeline=pipeline, structure=structure,
        final=_of(at_selected_epoch(structure, done.scalars), ids), robustness=_of(robustness, ids),
        curves=robustness,
        epochs=_of(with_runs(mark_selected(done.epoch_metrics, done.runs, done.scalars), done.runs), ids),
        spectra=_of(with_runs(done.spectra, done.runs), ids), interventions=interventions,
        points=with_runs(done.points, done.runs), frontier=frontier_points(summary, scored),
        paths=scored.frontier,
    )
