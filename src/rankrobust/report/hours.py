"""Where a study's hours go: worker time per run, split into training, evaluation and checks.

Per (model, method): the number of runs with stored timings, the mean seconds per run of each
part, and the group's worker hours Σ (train + eval + checks) / 3600 with its share of the
study's. A run's parts are the scalars ``time_train_s``, ``time_eval_s`` (the evaluation
without its sanity checks) and ``time_checks_s`` that every run stores; a database from before
they were stored falls back to the runs table's ``train_seconds`` and ``eval_seconds`` (checks
then counted in the evaluation, shown as "–"). Worker time is not wall time: ``W`` workers run
``W`` runs at once, so a study's wall time is about the total over ``W`` (Provenance above).
"""

from __future__ import annotations

import math

import pandas as pd

from rankrobust.report.tables import StudyTables

PARTS = {"time_train_s": "train_s", "time_eval_s": "eval_s", "time_checks_s": "checks_s"}
COLUMNS = ["model", "method", "runs", "train s/run", "eval s/run", "checks s/run",
           "worker h", "share"]


def run_times(tables: StudyTables) -> pd.DataFrame:
    """One row per run with stored timings: run_id, model, method, train_s, eval_s, checks_s
    (NaN where not stored), in seconds."""
    runs = tables.runs
    if runs.empty or not {"run_id", "model", "method"} <= set(runs.columns):
        return pd.DataFrame(columns=["run_id", "model", "method", *PARTS.values()])
    base = runs[["run_id", "model", "method"]].copy()
    scalars = tables.scalars
    stored = scalars[scalars["name"].isin(list(PARTS))] if len(scalars) else scalars
    if len(stored):
        wide = stored.pivot_table(index="run_id", columns="name", values="value", aggfunc="first")
        wide = wide.rename(columns=PARTS).reindex(columns=list(PARTS.values()))
        base = base.merge(wide, left_on="run_id", right_index=True, how="left")
    else:
        base = base.assign(**{part: math.nan for part in PARTS.values()})
    for part, column in (("train_s", "train_seconds"), ("eval_s", "eval_seconds")):
        if column in runs.columns:  # databases from before the split was stored
            fallback = pd.to_numeric(runs[column], errors="coerce").to_numpy()
            base[part] = base[part].where(base[part].notna(), fallback)
    timed = base[["train_s", "eval_s"]].notna().any(axis=1)
    return base[timed].reset_index(drop=True)


def hours_table(tables: StudyTables) -> pd.DataFrame:
    """The table of the module docstring, largest worker time first, then an "all" row (mean
    seconds per run over every timed run, total worker hours); empty when no run stored its
    timings."""
    times = run_times(tables)
    if times.empty:
        return pd.DataFrame(columns=COLUMNS)
    times = times.assign(total_s=times[list(PARTS.values())].sum(axis=1, min_count=1))
    grouped = times.groupby(["model", "method"], sort=False)
    table = grouped.agg(runs=("run_id", "size"), train=("train_s", "mean"),
                        eval=("eval_s", "mean"), checks=("checks_s", "mean"),
                        total=("total_s", "sum")).reset_index()
    whole = float(table["total"].sum())
    table = table.sort_values("total", ascending=False, kind="stable")
    rows = []
    for rec in table.to_dict(orient="records"):
        total = float(rec["total"])
        rows.append({"model": rec["model"], "method": rec["method"], "runs": int(rec["runs"]),
                     "train s/run": _seconds(float(rec["train"])),
                     "eval s/run": _seconds(float(rec["eval"])),
                     "checks s/run": _seconds(float(rec["checks"])),
                     "worker h": f"{total / 3600:.2f}",
                     "share": f"{100 * total / whole:.1f} %" if whole > 0 else "–"})
    rows.append({"model": "all", "method": "", "runs": len(times),
                 "train s/run": _seconds(float(times["train_s"].mean())),
                 "eval s/run": _seconds(float(times["eval_s"].mean())),
                 "checks s/run": _seconds(float(times["checks_s"].mean())),
                 "worker h": f"{whole / 3600:.2f}", "share": "100 %"})
    return pd.DataFrame(rows, columns=COLUMNS)


def _seconds(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:,.0f}" if value >= 10 else f"{value:.1f}"
