"""The paper's claims C1–C4 as measured effects with 95 % confidence intervals over seeds.

Statistics (seeds are the replicates):
- paired effect of method A vs B on the same (dataset, model, seed): d_s = m_A,s − m_B,s,
  estimate d̄, 95 % CI d̄ ± t_{0.975, n−1} · s_d/√n (Student t);
- difference of two independent groups (C3: CNN gain vs FC gain): Welch's interval,
  ā − b̄ ± t_{0.975, ν} · √(s_a²/n_a + s_b²/n_b), ν by Welch–Satterthwaite.

Verdict for a claim that the effect has sign ``direction`` (−1 "lowers", +1 "raises"):
**negligible** when the whole CI lies inside ±margin (an effect too small to matter, whichever
its sign: 0.005 for normalized structure measures, 0.01 for fooling ratios and robust
accuracies); otherwise **holds** when the whole CI lies on the claimed side of 0, **does not
hold** when it lies wholly on the other side, **inconclusive** otherwise, including fewer than 2
seeds. A claim with several rows (models, metrics, attacks) holds when every row holds, is
negligible when every row is, does not hold when no row holds and at least one does not or is
negligible, and is inconclusive otherwise.

Robustness is measured twice: the paper's fooling ratio (label change vs the clean prediction,
lower = more robust) and robust accuracy (correct under attack, higher = more robust), each as
the normalized area under its curve over the ε grid, for the strongest attack a study stored
(AutoAttack > APGD > PGD > FGSM). Claimed directions flip between the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rankrobust.methods.l1_nuclear import L1Nuclear
from rankrobust.report.summary import NATURAL, family, method_label, methods_of_kind

# The paper's structured regularizer (C2–C4), named through the method registry.
COMBINED = L1Nuclear.name

HOLDS, FAILS, INCONCLUSIVE, NEGLIGIBLE = "holds", "does not hold", "inconclusive", "negligible"
VERDICTS = (HOLDS, FAILS, NEGLIGIBLE, INCONCLUSIVE)
STRUCTURE_MARGIN = 0.005  # normalized erank / esparsity units
FOOLING_MARGIN = 0.01  # one percentage point of fooling ratio or robust accuracy
PRIMARY_METRIC = "fr_auc_pgd_inf"  # the default when a study stored no stronger attack

CLAIM_TEXT = {
    "C1": "adversarial training lowers effective rank and effective sparsity vs natural training",
    "C2": "ℓ1 + nuclear-norm regularization raises robustness (lower fooling ratio, higher robust "
          "accuracy) vs natural training",
    "C3": "the C2 gain is larger for CNNs than for fully connected networks",
    "C4": "ℓ1 + nuclear-norm regularization stays short of adversarial training",
    "C5": "truncating a naturally trained network's rank to the level adversarial training "
          "reaches does not make it as robust",
}
CLAIM_COLUMNS = ["claim", "scope", "metric", "comparison", "effect", "ci_low", "ci_high",
                 "relative", "n", "test", "verdict"]


@dataclass(frozen=True)
class Effect:
    """A difference with its 95 % CI; ``relative`` = estimate / |reference mean|."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    test: str
    relative: float = float("nan")


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t interval; NaN bounds for fewer than 2 finite values."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def paired_effect(a: pd.Series, b: pd.Series) -> Effect:
    """Effect of A − B from values indexed by seed; only seeds present in both are used."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    mean, low, high = t_interval((joined["a"] - joined["b"]).to_numpy())
    ref = float(joined["b"].mean()) if len(joined) else float("nan")
    rel = mean / abs(ref) if ref and math.isfinite(ref) else float("nan")
    return Effect(mean, low, high, len(joined), "paired t", rel)


def welch_effect(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> Effect:
    """Effect mean(a) − mean(b) with Welch's t interval (independent groups)."""
    a = np.asarray(a, float)[np.isfinite(a)]
    b = np.asarray(b, float)[np.isfinite(b)]
    n = min(a.size, b.size)
    if a.size == 0 or b.size == 0:
        return Effect(float("nan"), float("nan"), float("nan"), n, "Welch t")
    diff = float(a.mean() - b.mean())
    ref = abs(float(b.mean()))
    rel = diff / ref if ref > 0 else float("nan")
    if a.size < 2 or b.size < 2:
        return Effect(diff, float("nan"), float("nan"), n, "Welch t", rel)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Effect(diff, diff, diff, n, "Welch t", rel)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df) * se)
    return Effect(diff, diff - half, diff + half, n, "Welch t", rel)


def verdict(effect: Effect, direction: int, margin: float = 0.0) -> str:
    """holds / does not hold / inconclusive for a claimed sign ``direction`` (see module doc)."""
    low, high = effect.ci_low, effect.ci_high
    if effect.n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if margin > 0 and -margin <= low and high <= margin:
        return NEGLIGIBLE
    if (direction < 0 and high < 0) or (direction > 0 and low > 0):
        return HOLDS
    if (direction < 0 and low > 0) or (direction > 0 and high < 0):
        return FAILS
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """One verdict from a claim's rows (see module doc)."""
    if not verdicts:
        return INCONCLUSIVE
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    if all(v == NEGLIGIBLE for v in verdicts):
        return NEGLIGIBLE
    if HOLDS not in verdicts and (FAILS in verdicts or NEGLIGIBLE in verdicts):
        return FAILS
    return INCONCLUSIVE


def _by_seed(runs: pd.DataFrame, dataset: str, model: str, method: str, metric: str) -> pd.Series:
    sel = runs[(runs["dataset"] == dataset) & (runs["model"] == model) & (runs["method"] == method)]
    if metric not in sel.columns:
        return pd.Series(dtype=float)
    return sel.groupby("seed")[metric].mean()


def _row(claim: str, scope: str, metric: str, comparison: str, eff: Effect, direction: int,
         margin: float) -> dict[str, object]:
    return {
        "claim": claim, "scope": scope, "metric": metric, "comparison": comparison,
        "effect": eff.estimate, "ci_low": eff.ci_low, "ci_high": eff.ci_high,
        "relative": eff.relative, "n": eff.n, "test": eff.test,
        "verdict": verdict(eff, direction, margin),
    }


def robustness_metrics(attack: str, norm: str = "inf") -> list[tuple[str, int]]:
    """[(fooling-ratio metric, +1), (robust-accuracy metric, −1)] of ``attack``: the sign turns
    "lower fooling ratio = more robust" into the robust-accuracy direction."""
    return [(f"fr_auc_{attack}_{norm}", +1), (f"ra_auc_{attack}_{norm}", -1)]


def evaluate_claims(runs: pd.DataFrame, metric: str = PRIMARY_METRIC,
                    metrics: list[tuple[str, int]] | None = None) -> pd.DataFrame:
    """Claims table rows from the comparison runs (natural, adversarial, regularizers at chosen λ).

    ``runs`` has one row per run with dataset, model, method, seed and the per-run metrics of
    :func:`rankrobust.report.summary.run_summary`. ``metrics`` are the robustness metrics with
    their sign s (+1: lower = more robust, as the fooling ratio; −1: higher = more robust, as
    robust accuracy); by default ``metric`` alone with s = +1. Effects: C1 adversarial − natural
    in mean normalized erank / esparsity (claimed < 0); C2 ℓ1+nuclear − natural (claimed −s);
    C3 (natural − ℓ1+nuclear) gain of CNN − FC, absolute and relative to natural's mean
    (claimed s); C4 ℓ1+nuclear − adversarial (claimed s). The adversarial methods are every
    registered method of kind "adversarial" that has runs (FGSM-adv, PGD-adv, TRADES, ...); a
    model's family is what the model registry declares.
    """
    metrics = metrics if metrics is not None else [(metric, +1)]
    rows: list[dict[str, object]] = []
    label = method_label
    adversarial = methods_of_kind("adversarial")
    combined = label(COMBINED)
    pairs = runs[["dataset", "model"]].drop_duplicates().sort_values(["dataset", "model"])
    for dataset, model in pairs.itertuples(index=False):
        scope = f"{dataset} · {model} ({family(model)})"
        for adv in adversarial:
            for m, name in (("erank", "mean normalized effective rank"),
                            ("esparsity", "mean normalized effective sparsity")):
                a = _by_seed(runs, dataset, model, adv, m)
                nat = _by_seed(runs, dataset, model, NATURAL, m)
                if len(a) and len(nat):
                    rows.append(_row("C1", scope, name, f"{label(adv)} − {label(NATURAL)}",
                                     paired_effect(a, nat), -1, STRUCTURE_MARGIN))
        for col, sign in metrics:
            nat = _by_seed(runs, dataset, model, NATURAL, col)
            reg = _by_seed(runs, dataset, model, COMBINED, col)
            if len(reg) and len(nat):
                rows.append(_row("C2", scope, col, f"{combined} − {label(NATURAL)}",
                                 paired_effect(reg, nat), -sign, FOOLING_MARGIN))
            for adv in reversed(adversarial):  # strongest first
                a = _by_seed(runs, dataset, model, adv, col)
                if len(reg) and len(a):
                    rows.append(_row("C4", scope, col, f"{combined} − {label(adv)}",
                                     paired_effect(reg, a), sign, FOOLING_MARGIN))
    for dataset in sorted(runs["dataset"].unique()) if len(runs) else []:
        for col, sign in metrics:
            gains: dict[str, list[float]] = {"FC": [], "CNN": []}
            relative: dict[str, list[float]] = {"FC": [], "CNN": []}
            for model in sorted(runs[runs["dataset"] == dataset]["model"].unique()):
                if family(model) not in gains:  # a model of unknown family enters no C3 group
                    continue
                nat_m = _by_seed(runs, dataset, model, NATURAL, col)
                reg_m = _by_seed(runs, dataset, model, COMBINED, col)
                diff = (sign * (nat_m - reg_m)).dropna()  # the gain in robustness
                gains[family(model)].extend(diff.tolist())
                base = abs(float(nat_m.mean())) if len(nat_m) else float("nan")
                if base > 0:
                    relative[family(model)].extend((diff / base).tolist())
            comparison = (f"({label(NATURAL)} − {combined}) CNN − FC" if sign > 0
                          else f"({combined} − {label(NATURAL)}) CNN − FC")
            if gains["FC"] and gains["CNN"]:
                eff = welch_effect(np.array(gains["CNN"]), np.array(gains["FC"]))
                rows.append(_row("C3", f"{dataset} · CNN vs FC", f"gain in {col}", comparison,
                                 eff, +1, FOOLING_MARGIN))
            if relative["FC"] and relative["CNN"]:
                eff = welch_effect(np.array(relative["CNN"]), np.array(relative["FC"]))
                rows.append(_row("C3", f"{dataset} · CNN vs FC",
                                 f"relative gain in {col} (÷ natural's mean)",
                                 comparison + ", relative", eff, +1, FOOLING_MARGIN))
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    order = {c: i for i, c in enumerate(CLAIM_TEXT)}
    return table.sort_values("claim", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def truncated_robustness(rows: pd.DataFrame, target_erank: float) -> float:
    """Robust accuracy of SVD-truncated copies at mean normalized effective rank ``target_erank``:
    linear interpolation over the keep levels (clamped to the levels' range)."""
    rows = rows.sort_values("normalized_effective_rank")
    xs = rows["normalized_effective_rank"].to_numpy(float)
    ys = rows["robust_accuracy"].to_numpy(float)
    if xs.size == 0 or not math.isfinite(target_erank):
        return float("nan")
    return float(np.interp(target_erank, xs, ys))


def evaluate_c5(interventions: pd.DataFrame) -> pd.DataFrame:
    """C5 rows from the stored intervention tables (runs' identity merged in).

    Per (dataset, model, seed, attack setting): the natural run's whole-model SVD truncations
    (intervention "svd", layer "all") give robust accuracy as a function of the mean normalized
    effective rank; it is read off (interpolated) at the rank the adversarially trained run of
    the same seed has (its keep = 1 row), and compared with that run's robust accuracy under the
    same attack and ε. Effect = truncated natural − adversarial (claimed < 0: not as robust).
    """
    rows: list[dict[str, object]] = []
    if interventions.empty:
        return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    svd = interventions[(interventions["intervention"] == "svd") & (interventions["layer"] == "all")]
    for (dataset, model, attack, norm, eps), group in svd.groupby(
            ["dataset", "model", "attack", "norm", "epsilon"]):
        natural = group[group["method"] == NATURAL]
        for adv in reversed(methods_of_kind("adversarial")):
            full = group[(group["method"] == adv) & (group["keep"] == 1.0)]
            if natural.empty or full.empty:
                continue
            truncated, reference = {}, {}
            for seed, own in full.groupby("seed"):
                nat = natural[natural["seed"] == seed]
                if len(nat):
                    target = float(own["normalized_effective_rank"].mean())
                    truncated[seed] = truncated_robustness(nat, target)
                    reference[seed] = float(own["robust_accuracy"].mean())
            eff = paired_effect(pd.Series(truncated, dtype=float), pd.Series(reference, dtype=float))
            rows.append(_row("C5", f"{dataset} · {model} ({family(str(model))})",
                             f"robust accuracy, {attack} ℓ{'∞' if norm == 'inf' else norm} ε={eps:g}",
                             f"{method_label(NATURAL)} truncated to {method_label(adv)}'s erank − "
                             f"{method_label(adv)}", eff, -1, FOOLING_MARGIN))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def claim_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: claim, statement, rows, verdict (combined over its rows)."""
    out = []
    for claim, text in CLAIM_TEXT.items():
        sub = table[table["claim"] == claim]
        out.append({"claim": claim, "statement": text, "rows": len(sub),
                    "verdict": combine(sub["verdict"].tolist())})
    return pd.DataFrame(out)
