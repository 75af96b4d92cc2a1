"""Capacity matching for C3: each model's parameter count, and the FC ↔ CNN pairs of equal size.

C3 asks whether ℓ1+nuclear's gain is larger for CNNs than for fully connected networks. Between
networks of different size such a difference may be a capacity effect, so C3 is scored per
*capacity-matched pair* only: an FC model and a CNN model of one dataset whose trainable
parameter counts P (weights and biases) satisfy

    |P_CNN − P_FC| ≤ :data:`MATCH_TOLERANCE` · P_FC   (±15 %).

P comes from the model registry (:func:`rankrobust.models.parameter_count`, counted on the meta
device) for the network a run stored: its model, the dataset's input shape and classes, and its
``model_options`` (e.g. ``hidden`` of an MLP). The pairs are derived from these counts, not
declared, so a study that widens a model by its options is matched by what it trained. Pairs
are formed one to one, closest counts first; a model left without a partner is not in C3, and
the report says so. A model the registry cannot build (a plug-in) has no count and no partner.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rankrobust.data import dataset_info
from rankrobust.errors import RankRobustError
from rankrobust.models import parameter_count
from rankrobust.report.summary import family

MATCH_TOLERANCE = 0.15
SIZE_COLUMNS = ["dataset", "model", "family", "parameters", "partner", "difference", "note"]


def _count(dataset: str, model: str, options: dict[str, Any]) -> float:
    """Trainable parameters of ``model`` built for ``dataset`` with ``options`` (NaN: cannot)."""
    try:
        info = dataset_info(dataset)
        return float(parameter_count(model, info.in_shape, info.num_classes, **options))
    except (RankRobustError, TypeError, ValueError):
        return math.nan


def run_parameters(runs: pd.DataFrame) -> pd.Series:
    """Per run (index as ``runs``): the trainable parameters of its network, NaN where unknown.
    Reads each run's stored config (``model_options``); one count per distinct network."""
    cache: dict[tuple[str, str, str], float] = {}
    out = []
    configs = runs["config"] if "config" in runs else pd.Series(None, index=runs.index, dtype=object)
    for dataset, model, config in zip(runs["dataset"], runs["model"], configs, strict=True):
        options = config.get("model_options") if isinstance(config, dict) else None
        options = options if isinstance(options, dict) else {}
        key = (str(dataset), str(model), json.dumps(options, sort_keys=True, default=str))
        if key not in cache:
            cache[key] = _count(str(dataset), str(model), options)
        out.append(cache[key])
    return pd.Series(out, index=runs.index, dtype=float)


@dataclass(frozen=True)
class Pair:
    """An FC model and a CNN model of one dataset with their parameter counts."""

    dataset: str
    fc: str
    cnn: str
    fc_parameters: float
    cnn_parameters: float

    @property
    def difference(self) -> float:
        """P_CNN / P_FC − 1 (NaN where a count is unknown)."""
        if not (math.isfinite(self.fc_parameters) and math.isfinite(self.cnn_parameters)) \
                or self.fc_parameters <= 0:
            return math.nan
        return self.cnn_parameters / self.fc_parameters - 1.0

    @property
    def matched(self) -> bool:
        return math.isfinite(self.difference) and abs(self.difference) <= MATCH_TOLERANCE + 1e-12

    @property
    def scope(self) -> str:
        return f"{self.dataset} · {self.fc} (FC) ↔ {self.cnn} (CNN)"

    def counts(self) -> str:
        """'mlp 133,860 ↔ lenet5-wide 137,914 parameters (CNN +3.0 %)'."""
        diff = self.difference
        size = f" (CNN {100 * diff:+.1f} %)" if math.isfinite(diff) else ""
        return (f"{self.fc} {_number(self.fc_parameters)} ↔ {self.cnn} "
                f"{_number(self.cnn_parameters)} parameters{size}")


def _number(value: float) -> str:
    return f"{int(value):,}" if math.isfinite(value) else "unknown"


def model_sizes(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model) of ``runs``: family, parameters (NaN: unknown, or several
    sizes under one name), the capacity-matched partner and P_CNN/P_FC − 1 (where matched) and a
    note; columns :data:`SIZE_COLUMNS`, FC models first."""
    if runs.empty:
        return pd.DataFrame(columns=SIZE_COLUMNS)
    frame = runs[["dataset", "model"]].assign(parameters=run_parameters(runs))
    rows = []
    for (dataset, model), g in frame.groupby(["dataset", "model"]):
        counts = sorted(set(g["parameters"].dropna()))
        note = ("" if len(counts) == 1 else "not in the model registry" if not counts else
                f"sizes differ between runs ({_number(counts[0])}–{_number(counts[-1])})")
        rows.append({"dataset": str(dataset), "model": str(model), "family": family(str(model)),
                     "parameters": counts[0] if len(counts) == 1 else math.nan,
                     "partner": "", "difference": math.nan, "note": note})
    sizes = pd.DataFrame(rows, columns=SIZE_COLUMNS)
    for dataset in sizes["dataset"].unique():
        matched, _ = capacity_pairs(sizes, str(dataset))
        for p in matched:
            for own, other in ((p.fc, p.cnn), (p.cnn, p.fc)):
                at = (sizes["dataset"] == dataset) & (sizes["model"] == own)
                sizes.loc[at, "partner"] = other
                sizes.loc[at, "difference"] = p.difference
    order = sizes["family"].map({"FC": 0, "CNN": 1}).fillna(2)
    return sizes.assign(_o=order).sort_values(["dataset", "_o", "parameters", "model"]) \
        .drop(columns="_o").reset_index(drop=True)


def capacity_pairs(sizes: pd.DataFrame, dataset: str,
                   models: set[str] | None = None) -> tuple[list[Pair], list[Pair]]:
    """(matched pairs, every other FC × CNN combination) of ``dataset``'s models (restricted to
    ``models`` when given). Matched pairs are taken one to one, closest counts first."""
    own = sizes[sizes["dataset"] == dataset]
    if models is not None:
        own = own[own["model"].isin(models)]
    fcs = own[own["family"] == "FC"]
    cnns = own[own["family"] == "CNN"]
    candidates = [Pair(dataset, str(f), str(c), float(fp), float(cp))
                  for f, fp in zip(fcs["model"], fcs["parameters"], strict=True)
                  for c, cp in zip(cnns["model"], cnns["parameters"], strict=True)]
    matched: list[Pair] = []
    used: set[str] = set()
    for p in sorted((p for p in candidates if p.matched), key=lambda p: (abs(p.difference), p.fc, p.cnn)):
        if p.fc not in used and p.cnn not in used:
            matched.append(p)
            used |= {p.fc, p.cnn}
    return matched, [p for p in candidates if p not in matched]


def unmatched_note(pairs: list[Pair]) -> str:
    """Why C3 is not scored: the FC and CNN models and their counts (no pair within ±15 %)."""
    shown = "; ".join(p.counts() for p in pairs)
    return (f"not capacity-matched: {shown}; C3 compares networks whose parameter counts lie "
            f"within ±{100 * MATCH_TOLERANCE:g} % of each other, so it is not scored here (the "
            "unmatched contrast is shown as a secondary row)")


def leftover_notes(sizes: pd.DataFrame, datasets: list[str]) -> list[str]:
    """One line per dataset whose FC or CNN models have no capacity-matched partner while
    others do: they are left out of C3."""
    out = []
    for dataset in datasets:
        matched, _ = capacity_pairs(sizes, dataset)
        if not matched:
            continue
        paired = {m for p in matched for m in (p.fc, p.cnn)}
        own = sizes[(sizes["dataset"] == dataset) & sizes["family"].isin(["FC", "CNN"])
                    & ~sizes["model"].isin(paired)]
        for model, fam, count in zip(own["model"], own["family"], own["parameters"], strict=True):
            out.append(f"C3 ({dataset}): {model} ({fam}, {_number(float(count))} parameters) has "
                       f"no partner within ±{100 * MATCH_TOLERANCE:g} %: left out.")
    return out


def models_table(sizes: pd.DataFrame) -> pd.DataFrame:
    """The models as the report prints them: dataset (when several), model, family,
    parameters, the capacity-matched partner (with P_CNN/P_FC − 1) and a note."""
    if sizes.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "dataset": sizes["dataset"], "model": sizes["model"], "family": sizes["family"],
        "parameters": sizes["parameters"].map(_number),
        "capacity-matched partner": [
            f"{p} (CNN {100 * d:+.1f} %)" if p else f"none within ±{100 * MATCH_TOLERANCE:g} %"
            for p, d in zip(sizes["partner"], sizes["difference"], strict=True)],
        "note": sizes["note"]})
    if sizes["dataset"].nunique() == 1:
        out = out.drop(columns="dataset")
    return out
