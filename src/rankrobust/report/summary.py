"""One row per run (structure, robustness, accuracy) and the rule that picks λ for comparisons.

Per run:
- ``erank`` / ``esparsity``: mean over the model's weight layers of the *normalized* effective
  rank erank(W)/min(m, n) and effective sparsity esparsity(W)/(m·n) at the run's selected
  epoch (its ``best_epoch``: the weights it kept and was evaluated with,
  :mod:`rankrobust.report.epochs`; normalizing makes layers of different size comparable; both
  lie in (0, 1]).
- ``fr_auc_<attack>_<norm>``: the normalized area under the fooling-ratio curve,
  (1/(ε_max − ε_min)) ∫ FR(ε) dε by the trapezoid rule over the stored ε grid (the average
  height of the piecewise-linear curve over [ε_min, ε_max], not the plain mean of the grid's
  values; in [0, 1]; lower = more robust). The fooling ratio is the share of inputs whose
  predicted label changes (the paper's metric; a constant classifier scores 0).
- ``ra_auc_<attack>_<norm>``: the same area under the robust-accuracy curve (share of inputs
  classified correctly under attack; the field's standard; higher = more robust).
- ``degenerate``: clean accuracy within :data:`DEGENERATE_MARGIN` (10 points) of chance
  (1/classes): such a model is "robust" under the fooling ratio by being constant, so it is
  flagged, kept out of correlations and drawn hollow.
- ``rho_adv``: DeepFool's mean ‖r‖₂/‖x‖₂ (higher = more robust), when stored.

λ selection (stated in the report): for every (dataset, model) and method with swept parameters
(its ``swept`` declaration in the method registry: λ's, a rank budget), the candidate settings
are ordered from weakest to strongest (by the swept values in declared order, each times the
method's ``stronger`` sign); the chosen one is the strongest whose mean clean accuracy over seeds
is at least natural training's mean minus ``tolerance`` (2 points by default). When none
qualifies, the one with the highest mean clean accuracy is chosen and flagged. The accuracy
compared is the held-out **validation** accuracy (``final_val_acc``, from training examples
held out by ``train.validation_size``) wherever every run has one, so that λ is not chosen on
the test points the attacks then use; otherwise the test accuracy, and the table says so.

Method labels, colours, kinds and sweeps come from ``rankrobust.methods``; attack labels and
their strength order from ``rankrobust.attacks.registry``; a model's family (FC or CNN) from the
model registry. Names a registry does not know (e.g. a method of a plug-in that
is not imported) are shown as they are, family "?".
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from rankrobust.attacks.registry import by_strength
from rankrobust.data import dataset_info
from rankrobust.errors import ConfigError, RankRobustError
from rankrobust.methods import METHODS
from rankrobust.methods.natural import Natural
from rankrobust.models import model_family
from rankrobust.report.epochs import at_selected_epoch
from rankrobust.report.tables import StudyTables

NATURAL = Natural.name
LAMBDA_TOLERANCE = 0.02
DEGENERATE_MARGIN = 0.10


def attack_strength() -> list[str]:
    """Attacks by strength, strongest first (the attack registry's ``strength``): the report's
    primary robustness metric uses the first one a study stored."""
    return by_strength()


def method_order() -> list[str]:
    """Registered method names in display order."""
    return list(METHODS)


def method_label(name: str) -> str:
    cls = METHODS.get(name)
    return cls.label if cls is not None else str(name)


def method_color(name: str) -> str | None:
    cls = METHODS.get(name)
    return cls.color if cls is not None else None


def methods_of_kind(*kinds: str) -> list[str]:
    """Registered methods of the given kinds (adversarial, regularized, ...), in display order."""
    return [name for name, cls in METHODS.items() if cls.kind in kinds]


def swept_methods() -> list[str]:
    """Methods with swept parameters: their settings go through the λ rule."""
    return [name for name, cls in METHODS.items() if cls.swept]


def family(model: str) -> str:
    """'FC' or 'CNN' as the model registry declares it; '?' for a model it does not know."""
    try:
        return model_family(model)
    except ConfigError:
        return "?"


def _params(text: Any) -> dict[str, Any]:
    try:
        data = json.loads(text) if isinstance(text, str) else dict(text or {})
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def setting(method: str, params: Any) -> str:
    """The swept values of a run, e.g. 'lambda_nuclear=1, lambda_l1=0.0003' ('' when none)."""
    cls = METHODS.get(method)
    if cls is None or not cls.swept:
        return ""
    values = _params(params)
    return ", ".join(f"{k}={values.get(k)!s}" if not isinstance(values.get(k), float)
                     else f"{k}={values[k]:g}" for k in cls.swept if values.get(k) is not None)


def strength(method: str, params: Any) -> tuple[float, ...]:
    """Sort key, weakest first: the swept values times the method's ``stronger`` sign."""
    cls = METHODS.get(method)
    if cls is None:
        return ()
    values = _params(params)
    out = []
    for key in cls.swept:
        v = values.get(key)
        out.append(0.0 if v is None else cls.stronger * float(v))
    return tuple(out)


def curve_area(epsilon: np.ndarray, values: np.ndarray) -> float:
    """Normalized trapezoid area (1/(ε_max − ε_min)) ∫ values dε; the value itself for one ε."""
    order = np.argsort(epsilon)
    eps, val = np.asarray(epsilon, float)[order], np.asarray(values, float)[order]
    if eps.size == 0:
        return float("nan")
    if eps.size == 1 or eps[-1] == eps[0]:
        return float(val.mean())
    area = float(np.sum((val[1:] + val[:-1]) * np.diff(eps)) / 2.0)
    return area / float(eps[-1] - eps[0])


def final_structure(structure: pd.DataFrame) -> pd.DataFrame:
    """The structure rows of each run's last recorded epoch."""
    if structure.empty:
        return structure
    last = structure.groupby("run_id")["epoch"].transform("max")
    return structure[structure["epoch"] == last].reset_index(drop=True)


def chance_level(dataset: str) -> float:
    """1/classes of ``dataset`` (NaN for a dataset the registry does not know)."""
    try:
        return 1.0 / dataset_info(dataset).num_classes
    except RankRobustError:
        return float("nan")


def primary_attack(summary: pd.DataFrame, norm: str = "inf") -> str | None:
    """The strongest attack with stored curves at ``norm`` (see :func:`attack_strength`)."""
    for attack in attack_strength():
        if f"fr_auc_{attack}_{norm}" in summary.columns and summary[f"fr_auc_{attack}_{norm}"].notna().any():
            return attack
    return None


DELTA_NAMES = ("delta", "w-w0", "w − w₀", "w - w0", "w_minus_w0", "delta_w", "update")


def _is_delta(value: object) -> bool:
    text = str(value).strip().lower()
    return text in DELTA_NAMES or text.startswith("delta")


def is_delta_row(structure: pd.DataFrame) -> pd.Series:
    """True for the rows of a structure table that describe W − W₀, not W (the ways of
    :func:`structure_families`)."""
    delta = pd.Series(False, index=structure.index)
    for col in ("family", "weights"):
        if col in structure:
            delta |= structure[col].map(lambda v: pd.notna(v) and _is_delta(v)).astype(bool)
    if "layer" in structure:
        delta |= structure["layer"].astype(str).str.lower().str.match(r"^delta[_/:]")
    return delta


def weight_rows(structure: pd.DataFrame) -> pd.DataFrame:
    """The rows of a structure table that describe W itself (figures per layer and epoch)."""
    return structure[~is_delta_row(structure)] if not structure.empty else structure


def structure_families(structure: pd.DataFrame) -> pd.DataFrame:
    """Per run: erank, esparsity (W) and delta_erank, delta_esparsity (W − W₀) of the last epoch
    in ``structure`` (``run_summary`` passes each run's selected epoch only).

    Read tolerantly, whichever way a study stored W − W₀: rows whose ``family`` (or ``weights``)
    column names the delta ("delta", "W − W₀", "w_minus_w0", ...), rows whose layer name starts
    with ``delta_`` or ``delta/``, or columns ``delta_normalized_effective_rank`` /
    ``delta_normalized_effective_sparsity``. Every other row is W."""
    cols = ["run_id", "erank", "esparsity", "delta_erank", "delta_esparsity"]
    final = final_structure(structure)
    if final.empty:
        return pd.DataFrame(columns=cols)
    delta = is_delta_row(final)
    names = {"normalized_effective_rank": "erank", "normalized_effective_sparsity": "esparsity"}
    plain = final[~delta].groupby("run_id")[list(names)].mean().rename(columns=names)
    moved = final[delta].groupby("run_id")[list(names)].mean().rename(
        columns={k: f"delta_{v}" for k, v in names.items()})
    extra = [c for c in (f"delta_{k}" for k in names) if c in final]
    if extra:
        more = final[~delta].groupby("run_id")[extra].mean().rename(
            columns={f"delta_{k}": f"delta_{v}" for k, v in names.items()})
        moved = more.combine_first(moved) if not moved.empty else more
    out = plain.join(moved, how="outer").reset_index()
    return out.reindex(columns=cols)


def run_summary(tables: StudyTables) -> pd.DataFrame:
    """One row per run: identity, accuracy, degenerate flag, timings, erank, esparsity,
    fr_auc_* and ra_auc_* per stored attack, rho_adv and other scalars."""
    keep = [c for c in ("run_id", "dataset", "model", "method", "method_params", "seed",
                        "clean_accuracy", "train_seconds", "eval_seconds") if c in tables.runs.columns]
    out = tables.runs[keep].copy()
    params = out["method_params"] if "method_params" in out.columns else pd.Series("{}", index=out.index)
    out["setting"] = [setting(m, p) for m, p in zip(out["method"], params, strict=True)]
    out["family"] = out["model"].map(family)
    chance = out["dataset"].map(chance_level).astype(float)  # float even with no rows
    out["degenerate"] = out["clean_accuracy"].astype(float) < chance + DEGENERATE_MARGIN
    selected = at_selected_epoch(tables.structure, tables.scalars)  # the evaluated weights
    out = out.merge(structure_families(selected), on="run_id", how="left")
    rob = tables.robustness
    if not rob.empty:
        rows = []
        for (run_id, attack, norm), g in rob.groupby(["run_id", "attack", "norm"]):
            eps = g["epsilon"].to_numpy()
            for prefix, col in (("fr_auc", "fooling_ratio"), ("ra_auc", "robust_accuracy")):
                if col in g.columns:
                    rows.append((run_id, f"{prefix}_{attack}_{norm}",
                                 curve_area(eps, g[col].to_numpy(float))))
        areas = pd.DataFrame(rows, columns=["run_id", "name", "area"])
        wide = areas.pivot_table(index="run_id", columns="name", values="area")
        out = out.merge(wide, left_on="run_id", right_index=True, how="left")
    sc = tables.scalars
    if not sc.empty:
        wide = sc.pivot_table(index="run_id", columns="name", values="value", aggfunc="mean")
        out = out.merge(wide, left_on="run_id", right_index=True, how="left")
    return out.reset_index(drop=True)


VALIDATION = "final_val_acc"


def select_lambdas(summary: pd.DataFrame, tolerance: float = LAMBDA_TOLERANCE) -> pd.DataFrame:
    """The swept settings per (dataset, model, method) with mean accuracy and the chosen one.

    Columns: dataset, model, method, setting, clean_accuracy (test, mean over seeds),
    val_accuracy, selected_on ("validation" or "test"), natural_accuracy (natural training's
    mean on the same split), seeds, qualifies, selected, fallback (no setting qualified).
    """
    cols = ["dataset", "model", "method", "setting", "clean_accuracy", "val_accuracy",
            "selected_on", "natural_accuracy", "seeds", "qualifies", "selected", "fallback"]
    reg = summary[summary["method"].isin(swept_methods())]
    if reg.empty:
        return pd.DataFrame(columns=cols)
    natural_runs = summary[summary["method"] == NATURAL]
    on_validation = (VALIDATION in summary.columns and len(natural_runs) > 0
                     and bool(reg[VALIDATION].notna().all())
                     and bool(natural_runs[VALIDATION].notna().all()))
    score = VALIDATION if on_validation else "clean_accuracy"
    natural = natural_runs.groupby(["dataset", "model"])[score].mean().rename("natural_accuracy")
    params = reg["method_params"] if "method_params" in reg.columns else pd.Series("{}", index=reg.index)
    keys = [strength(m, p) for m, p in zip(reg["method"], params, strict=True)]
    reg = reg.assign(_key=pd.Series(keys, index=reg.index, dtype=object),
                     _score=reg[score], _val=reg.get(VALIDATION, np.nan))
    grid = (reg.groupby(["dataset", "model", "method", "setting"])
            .agg(clean_accuracy=("clean_accuracy", "mean"), val_accuracy=("_val", "mean"),
                 _score=("_score", "mean"), seeds=("seed", "nunique"), _key=("_key", "first"))
            .reset_index())
    grid["selected_on"] = "validation" if on_validation else "test"
    grid = grid.merge(natural, left_on=["dataset", "model"], right_index=True, how="left")
    grid["qualifies"] = grid["_score"] >= grid["natural_accuracy"] - tolerance
    grid["selected"] = False
    grid["fallback"] = False
    order = method_order()
    grid["_method"] = grid["method"].map(lambda m: order.index(m) if m in order else len(order))
    grid = grid.sort_values(["dataset", "model", "_method", "_key"], kind="stable")
    for _, group in grid.groupby(["dataset", "model", "method"]):
        ok = group[group["qualifies"]]
        if len(ok):
            grid.loc[ok.index[-1], "selected"] = True
        else:
            best = group["_score"].idxmax()
            grid.loc[best, ["selected", "fallback"]] = True
    return grid[cols].reset_index(drop=True)


def comparison_runs(summary: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """Runs entering the comparisons: unswept methods, and each swept one at its chosen setting."""
    base = summary[~summary["method"].isin(swept_methods())]
    keys = ["dataset", "model", "method", "setting"]
    chosen = selection.loc[selection["selected"].astype(bool), keys]
    reg = summary.merge(chosen, on=keys) if len(chosen) else summary.iloc[:0]
    return pd.concat([base, reg], ignore_index=True)
