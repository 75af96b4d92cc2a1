"""Everything a report section reads, computed once from the stored tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rankrobust.report.claims import (
    claim_verdicts,
    evaluate_c5,
    evaluate_claims,
    robustness_metrics,
)
from rankrobust.report.frontier import frontier, frontier_paths
from rankrobust.report.summary import (
    comparison_runs,
    final_structure,
    primary_attack,
    run_summary,
    select_lambdas,
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


def make_context(tables: StudyTables, figure_dir: Path, source: str = "") -> Context:
    """Summaries, λ choice, claims and the joined frames of ``tables``."""
    done = tables.completed()
    summary = run_summary(done)
    selection = select_lambdas(summary)
    chosen = comparison_runs(summary, selection)
    ids = set(chosen["run_id"])
    attack = primary_attack(summary) or "pgd"
    interventions = with_runs(done.interventions, done.runs)
    claims = pd.concat([evaluate_claims(chosen, metrics=robustness_metrics(attack)),
                        evaluate_c5(interventions)], ignore_index=True)
    verdicts = claim_verdicts(claims)
    pipeline = is_pipeline_check(done.runs)
    if pipeline:  # no verdicts on the paper from synthetic data
        claims["verdict"] = PIPELINE_VERDICT
        verdicts["verdict"] = PIPELINE_VERDICT
    structure = with_runs(done.structure, done.runs)
    robustness = with_runs(done.robustness, done.runs)
    points = frontier(summary, robustness)
    return Context(
        tables=tables, done=done, source=source, figure_dir=figure_dir, summary=summary,
        selection=selection, chosen=chosen, attack=attack, claims=claims, verdicts=verdicts,
        pipeline=pipeline, structure=structure, final=_of(final_structure(structure), ids),
        robustness=_of(robustness, ids), curves=robustness, epochs=_of(with_runs(done.epoch_metrics, done.runs), ids),
        spectra=_of(with_runs(done.spectra, done.runs), ids), interventions=interventions,
        points=with_runs(done.points, done.runs), frontier=points, paths=frontier_paths(points),
    )
