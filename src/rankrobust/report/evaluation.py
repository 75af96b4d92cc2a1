"""How the runs were attacked, as the report states it: the attack settings, the gradient-masking
checks, and which member of AutoAttack broke each input (so that what the report says of Square
follows from stored counts)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rankrobust.attacks.registry import attack_label
from rankrobust.report.document import code, plain
from rankrobust.report.summary import attack_strength, method_label, method_order

SETTING_COLUMNS = ["attack", "norm", "steps", "restarts", "points", "epsilons", "options"]


def _evaluation(config: Any) -> dict[str, Any]:
    """A run's ``evaluation`` section (configs are parsed and checked by :mod:`.stored`)."""
    ev = config.get("evaluation") if isinstance(config, dict) else None
    return ev if isinstance(ev, dict) else {}


def _attack_row(spec: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any]:
    opts = spec.get("options") or {}
    rest = ", ".join(f"{k} {v}" for k, v in sorted(opts.items()) if k not in ("steps", "restarts", "seed"))
    return {"attack": spec.get("attack"), "norm": spec.get("norm", "inf"),
            "steps": opts.get("steps", "default"), "restarts": opts.get("restarts", "default"),
            "points": spec.get("n") or ev.get("n"),
            "epsilons": ", ".join(f"{e:g}" for e in spec.get("epsilons") or []),
            "options": rest or "–"}


def attack_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """The distinct evaluation settings of the runs: attack, norm, steps, restarts, points, ε grid."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for config in runs.get("config", pd.Series(dtype=object)):
        ev = _evaluation(config)
        for spec in ev.get("attacks") or []:
            row = _attack_row(spec, ev)
            rows.setdefault(tuple(map(str, row.values())), row)
        if ev.get("deepfool"):
            row = {"attack": "deepfool (ρ_adv)", "norm": "2",
                   "steps": (ev.get("deepfool_options") or {}).get("max_iter", "default"),
                   "restarts": "–", "points": ev.get("n"), "epsilons": "minimal perturbation",
                   "options": "–"}
            rows.setdefault(tuple(map(str, row.values())), row)
    return pd.DataFrame(list(rows.values()), columns=SETTING_COLUMNS)


def sanity_statement(runs: pd.DataFrame) -> str:
    """Whether the gradient-masking checks ran, and in how many runs."""
    chosen = [_evaluation(c).get("sanity_checks") for c in runs.get("config", [])]
    ran = sum(bool(c) for c in chosen)
    if ran == 0:
        return ("The gradient-masking checks did **not** run (`evaluation.sanity_checks` is off "
                "in every run), so this report makes no statement about gradient masking.")
    listed = sorted({str(a) for c in chosen if isinstance(c, list) for a in c})
    which = (f" on the curves of {', '.join(plain(a) for a in listed)} (the other curves were "
             "not checked)" if listed and all(isinstance(c, list) for c in chosen if c) else "")
    return (f"The gradient-masking checks ran in {ran} of {len(runs)} runs{which}; "
            "no run stored a warning.")


def sanity_warnings(runs: pd.DataFrame) -> list[str]:
    """'run_id (model, method, seed): warning' for every stored sanity-check warning."""
    if "warnings" not in runs.columns:
        return []
    out = []
    for row in runs.to_dict(orient="records"):
        who = (f"{code(row['run_id'])} ({plain(row.get('model'))}, {plain(row.get('method'))}, "
               f"seed {plain(row.get('seed'))})")
        out += [f"{who}: {plain(item)}" for item in row["warnings"] or []]
    return out


def autoattack_members(robustness: pd.DataFrame) -> pd.DataFrame:
    """Inputs each AutoAttack member broke first (its ``broken_by`` counts; "clean": already
    misclassified), summed over runs per dataset, model, method, norm and ε; rows in the
    registry's method order, members in the attack's order."""
    if "broken_by" not in robustness.columns or robustness["broken_by"].isna().all():
        return pd.DataFrame()
    rows = robustness[robustness["broken_by"].map(lambda b: isinstance(b, dict))]
    counts = pd.DataFrame(list(rows["broken_by"]), index=rows.index).fillna(0).astype(int)
    keys = ["dataset", "model", "method", "norm", "epsilon"]
    table = pd.concat([rows[keys], rows[["run_id"]], counts], axis=1)
    members = list(counts.columns)
    out = table.groupby(keys).agg(runs=("run_id", "nunique"), **{m: (m, "sum") for m in members})
    out = out.reset_index()
    order = {m: i for i, m in enumerate(method_order())}
    out = out.sort_values(["dataset", "model", "method"], key=lambda s: s.map(order)
                          if s.name == "method" else s, kind="stable").reset_index(drop=True)
    out["method"] = out["method"].map(method_label)
    return out


def member_sentence(members: pd.DataFrame, member: str = "square") -> str:
    """What ``member`` broke, from the counts of :func:`autoattack_members`."""
    if members.empty or member not in members.columns:
        return ""
    total, runs = int(members[member].sum()), int(members["runs"].sum())
    per = members.groupby("method", sort=False)[member].sum()
    name = attack_label(member)
    if total == 0:
        return (f"{name}, run on the inputs the gradient-based members left unbroken, broke none "
                f"of them in any of the {runs} runs.")
    spread = f"{int(per.min())}–{int(per.max())}" if per.min() != per.max() else f"{int(per.max())}"
    return (f"{name}, run on the inputs the gradient-based members left unbroken, broke "
            f"**{total}** of them in all ({spread} per method, over {runs} runs): the gradient "
            "attacks missed inputs that a gradient-free search found.")


def attack_gaps(curves: pd.DataFrame) -> pd.DataFrame:
    """How much each weaker ℓ∞ attack overstates robust accuracy against the strongest one
    stored at the same ε: per dataset, model, method and shared ε, the mean robust accuracy
    under each attack and ``overstated`` = weaker − strongest, in points (mean over the runs)."""
    linf = curves[curves["norm"].astype(str) == "inf"] if len(curves) else curves
    if linf.empty or "robust_accuracy" not in linf:
        return pd.DataFrame()
    rank = {a: i for i, a in enumerate(attack_strength())}
    attacks = sorted(set(map(str, linf["attack"])), key=lambda a: rank.get(a, len(rank)))
    if len(attacks) < 2 or attacks[0] not in rank:
        return pd.DataFrame()
    strongest = attacks[0]
    means = (linf.groupby(["dataset", "model", "method", "epsilon", "attack"])["robust_accuracy"]
             .mean().unstack("attack"))
    rows = []
    order = {m: i for i, m in enumerate(method_order())}
    records = sorted(means.reset_index().to_dict(orient="records"), key=lambda r: (
        str(r["dataset"]), str(r["model"]), order.get(str(r["method"]), len(order)), r["epsilon"]))
    for row in records:
        if pd.isna(row.get(strongest)):
            continue
        for weaker in attacks[1:]:
            if pd.notna(row.get(weaker)):
                rows.append({"dataset": row["dataset"], "model": row["model"],
                             "method": method_label(str(row["method"])), "ε": row["epsilon"],
                             "attack": attack_label(weaker, "inf"),
                             "robust accuracy": row[weaker], f"vs {attack_label(strongest, 'inf')}":
                             row[strongest], "overstated (points)": 100 * (row[weaker] - row[strongest])})
    return pd.DataFrame(rows)


def gap_sentence(gaps: pd.DataFrame) -> str:
    """'PGD ℓ∞ overstated robust accuracy by a to b points against AutoAttack ℓ∞ ...', one
    clause per weaker attack, from :func:`attack_gaps`."""
    if gaps.empty:
        return ""
    versus = next(c for c in gaps.columns if c.startswith("vs "))[3:]
    parts = []
    for attack, g in gaps.groupby("attack", sort=False):
        low, high = g["overstated (points)"].min(), g["overstated (points)"].max()
        parts.append(f"{plain(attack)} by {low:+.1f} to {high:+.1f} points (at ε "
                     f"{', '.join(f'{e:g}' for e in sorted(g['ε'].unique()))})")
    return (f"Robust accuracy under a weaker attack minus under {plain(versus)} at the same budget, "
            f"over methods and models: {'; '.join(parts)}. Positive: the weaker attack overstates "
            "robustness.")
