"""Per-run tables of the report: every run with its flags, and the headline table of clean and
robust accuracy per method at the settings the comparisons use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from rankrobust.attacks.registry import attack_label
from rankrobust.chance import ABOVE_CHANCE
from rankrobust.report.capacity import run_parameters
from rankrobust.report.document import Markup, code, markup_frame, plain
from rankrobust.report.epochs import selected_epochs, selects_epoch
from rankrobust.report.summary import (
    DEGENERATE_MARGIN,
    chance_level,
    family,
    method_label,
    method_order,
    setting,
)
from rankrobust.report.tables import StudyTables

FALLBACK_MARK = "†"
COLLAPSED = "collapsed"  # a run scalar: 1 when training collapsed (constant predictions)
NEVER_ROBUST = "never robust"


def pct(value: Any) -> str:
    """'94.1 %'; '–' for a missing value."""
    return "–" if pd.isna(value) else f"{100 * float(value):.1f} %"


def _config_text(config: Any) -> str:
    t = config.get("train") if isinstance(config, dict) else None
    if not isinstance(t, dict) or not {"epochs", "optimizer", "lr", "batch_size"} <= set(t):
        return ""
    return f"{t['epochs']} ep, {t['optimizer']} lr {t['lr']:g}, bs {t['batch_size']}"


def never_robust(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.Series:
    """True for the runs whose validation robust accuracy, measured at some epoch, never reached
    ``ABOVE_CHANCE``/C (``rankrobust.chance``, as collapse detection): adversarial
    training that never became robust (e.g. FGSM-adv's catastrophic overfitting from its first
    epochs), which collapse detection, a fall after being above chance, does not catch."""
    out = pd.Series(False, index=runs.index)
    if epochs.empty or "val_robust_acc" not in epochs.columns or "dataset" not in runs.columns:
        return out
    best = pd.to_numeric(epochs["val_robust_acc"], errors="coerce").groupby(epochs["run_id"]).max()
    peak = runs["run_id"].map(best)  # NaN: never measured
    return (peak < ABOVE_CHANCE * runs["dataset"].map(chance_level)).fillna(False).astype(bool)


def _flags(runs: pd.DataFrame, scalars: pd.DataFrame, epochs: pd.DataFrame) -> pd.Series:
    """'degenerate' (clean accuracy within 10 points of chance), 'collapsed' (the run's
    ``collapsed`` scalar is 1) and 'never robust' (:func:`never_robust`), comma-joined per run."""
    flags: pd.Series = pd.Series([[] for _ in range(len(runs))], index=runs.index, dtype=object)
    if "clean_accuracy" in runs.columns and "dataset" in runs.columns:
        chance = runs["dataset"].map(chance_level)
        low = pd.to_numeric(runs["clean_accuracy"], errors="coerce") < chance + DEGENERATE_MARGIN
        for i in runs.index[low.fillna(False).astype(bool)]:
            flags[i].append("degenerate")
    if len(scalars) and COLLAPSED in set(scalars["name"]):
        hit = scalars[(scalars["name"] == COLLAPSED) & (scalars["value"].astype(float) == 1.0)]
        for i in runs.index[runs["run_id"].isin(set(hit["run_id"]))]:
            flags[i].append(COLLAPSED)
    for i in runs.index[never_robust(runs, epochs)]:
        flags[i].append(NEVER_ROBUST)
    return flags.map(", ".join)


def run_table(tables: StudyTables) -> pd.DataFrame:
    """Every run (failed included): config, the network's trainable parameters, clean accuracy,
    timings, the epoch kept by validation-based selection, flags and error."""
    runs = tables.runs.copy()
    if "method_params" in runs.columns:
        runs["setting"] = [setting(m, p) for m, p in zip(runs["method"], runs["method_params"],
                                                         strict=True)]
    if len(runs) and {"dataset", "model"} <= set(runs.columns):
        runs["parameters"] = run_parameters(runs).map(
            lambda v: "–" if pd.isna(v) else f"{int(v):,}")
    cols = [c for c in ("run_id", "dataset", "model", "parameters", "method", "setting", "seed",
                        "status", "clean_accuracy", "train_seconds", "eval_seconds")
            if c in runs.columns]
    out = runs[cols].copy()
    out["run_id"] = markup_frame({"id": [code(r) for r in out["run_id"]]}, index=out.index)["id"]
    if "config" in runs.columns:
        out.insert(len(out.columns) - 3, "training", runs["config"].map(_config_text))
    if "config" in runs.columns:  # the epoch a run with select_epoch kept (its weights evaluated)
        best = selected_epochs(tables.scalars)
        out["kept epoch"] = [str(best[str(r)]) if selects_epoch(c) and str(r) in best else ""
                             for r, c in zip(runs["run_id"], runs["config"], strict=True)]
    out["flag"] = _flags(runs, tables.scalars, tables.epoch_metrics)
    if "error" in runs.columns and runs["error"].notna().any():
        out["error"] = runs["error"].fillna("")
    return out.sort_values([c for c in ("dataset", "model", "method", "seed") if c in out.columns])


def _head_budget(curves: pd.DataFrame, budget: float) -> float:
    """The largest stored ε ≤ ε_train (the largest stored one when all are above it)."""
    eps = curves["epsilon"].astype(float)
    below = eps[eps <= budget * (1 + 1e-9)] if np.isfinite(budget) else eps
    return float(below.max() if len(below) else eps.min())


def headline(chosen: pd.DataFrame, robustness: pd.DataFrame, selection: pd.DataFrame,
             attack: str, eps_train: Mapping[tuple[str, str], float]) -> pd.DataFrame:
    """Rows = methods (registry order), columns per dataset · model: mean clean accuracy and mean
    robust accuracy under ``attack`` (ℓ∞) at ε_train (``eps_train`` per dataset and model; the
    largest stored budget below it, or the largest stored one where ε_train is unknown),
    over the comparison runs, and n (seeds). A setting chosen as fallback (no setting within the λ rule) is
    marked † in both cells."""
    curves = robustness[(robustness["attack"] == attack) & (robustness["norm"] == "inf")]
    fallback = (set(map(tuple, selection.loc[selection["fallback"].astype(bool),
                                             ["dataset", "model", "method"]].to_numpy()))
                if len(selection) else set())
    columns: dict[str, dict[str, str]] = {}
    groups = sorted(chosen.groupby(["dataset", "model"]), key=lambda g: (
        str(g[0][0]), family(str(g[0][1])) != "FC", str(g[0][1])))
    for (dataset, model), group in groups:
        own = curves[curves["run_id"].isin(set(group["run_id"]))]
        if own.empty:
            continue
        eps = _head_budget(own, eps_train.get((str(dataset), str(model)), float("nan")))
        at = own[np.isclose(own["epsilon"].astype(float), eps)]
        robust = at.groupby("run_id")["robust_accuracy"].mean()
        scope = f"{dataset} · {model}" if chosen["dataset"].nunique() > 1 else str(model)
        clean_col, robust_col = f"{scope} clean", f"{scope} {attack_label(attack, 'inf')} ε {eps:g}"
        for method, runs in group.groupby("method"):
            mark = f" {FALLBACK_MARK}" if (dataset, model, method) in fallback else ""
            columns.setdefault(clean_col, {})[str(method)] = pct(runs["clean_accuracy"].mean()) + mark
            ra = robust.reindex(runs["run_id"]).mean()
            columns.setdefault(robust_col, {})[str(method)] = pct(ra) + mark
            columns.setdefault(f"{scope} n", {})[str(method)] = str(runs["seed"].nunique() if "seed" in runs else len(runs))
    if not columns:
        return pd.DataFrame()
    table = pd.DataFrame(columns).fillna("–")
    order = [m for m in method_order() if m in table.index] + sorted(set(table.index) - set(method_order()))
    table = table.loc[order]
    cells = {"method": [plain(method_label(m), block_start=False) for m in table.index]}
    cells.update({c: [Markup(v) for v in table[c]] for c in table.columns})  # our own text
    return markup_frame(cells)
