"""Claims under the #18 rules, on hand-built databases and frames, and on the two demo runs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rankrobust.experiments.config import run_config_from_dict
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult
from rankrobust.experiments.store import ResultsStore
from rankrobust.report.claims import (
    HOLDS,
    NOT_MEASURABLE,
    NOT_TESTABLE,
    claim_verdicts,
    evaluate_c5,
    evaluate_claims,
    robustness_metrics,
)
from rankrobust.report.summary import comparison_runs, run_summary, select_lambdas
from rankrobust.report.tables import load_tables

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "docs" / "results" / "demo-mnist5k" / "results.sqlite"
OTHER = ROOT.parent.parent / "shared" / "data" / "demo-mnist5k-other-cpu.sqlite"
LAMBDAS = {"natural": [{}], "pgd-adv": [{"eps": 0.1}],
           "l1+nuclear": [{"lambda_l1": 1e-5, "lambda_nuclear": 1e-4},
                          {"lambda_l1": 1e-4, "lambda_nuclear": 1e-3}]}
EPS = (0.025, 0.05, 0.075, 0.1)


def _config(method: str, params: dict[str, Any], seed: int, attacks: list[dict[str, Any]]) -> Any:
    return run_config_from_dict({
        "dataset": "mnist5k", "model": "mlp",
        "train": {"epochs": 1, "seed": seed, "method": {"name": method, **params}},
        "evaluation": {"n": 40, "attacks": attacks}})


def _write(path: Path, results: list[tuple[Any, RunResult]]) -> Path:
    with ResultsStore(path) as store:
        store.register([c for c, _ in results])
        for _, r in results:
            store.record(r)
    return path


def _result(config: Any, robustness: list[dict[str, Any]], clean: float,
            scalars: dict[str, float] | None = None, erank: float = 0.8) -> RunResult:
    structure = [{"epoch": 1, "layer": "net.0", "kind": "linear", "shape": "20x784", "rows": 20,
                  "cols": 784, "normalized_effective_rank": erank,
                  "normalized_effective_sparsity": 0.6}]
    return RunResult(run_id=run_id(config), status="complete", clean_accuracy=clean,
                     structure=structure, robustness=robustness, scalars=scalars or {},
                     started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00")


def _floor_db(path: Path) -> Path:
    """AutoAttack at one budget (ε 0.3 = ε_train) leaves 0 % to natural and ℓ1+nuclear."""
    attacks = [{"attack": "autoattack", "epsilons": [0.3]}]
    out = []
    for method, grid in LAMBDAS.items():
        for params in grid:
            params = {"eps": 0.3} if method == "pgd-adv" else params
            for seed in range(3):
                cfg = _config(method, params, seed, attacks)
                ra = 0.4 + 0.01 * seed if method == "pgd-adv" else 0.0
                rows = [{"attack": "autoattack", "norm": "inf", "epsilon": 0.3, "options": "{}",
                         "fooling_ratio": 1 - ra, "robust_accuracy": ra, "clean_accuracy": 0.95,
                         "n": 40}]
                out.append((cfg, _result(cfg, rows, 0.95 - 0.001 * seed)))
    return _write(path, out)


def test_both_arms_at_zero_percent_are_not_measurable(tmp_path: Path) -> None:
    tables = load_tables(_floor_db(tmp_path / "floor.sqlite"))
    summary = run_summary(tables.completed())
    chosen = comparison_runs(summary, select_lambdas(summary))
    table = evaluate_claims(chosen, metrics=robustness_metrics("autoattack"))
    c2 = table[(table["claim"] == "C2") & (table["metric"] == "ra_auc_autoattack_inf")]
    assert list(c2["verdict"]) == [NOT_MEASURABLE]  # was "negligible" (CI [0, 0])
    from rankrobust.report.scoring import score_claims

    result = score_claims(tables)
    c2 = result.rows[(result.rows["claim"] == "C2") & (result.rows["role"] == "primary")]
    assert list(c2["verdict"]) == [NOT_MEASURABLE] and "floor" in c2.iloc[0]["note"]
    assert result.attack is None and any("no attack stores a curve" in n for n in result.notes)
    assert result.verdicts.set_index("claim").loc["C2", "verdict"] == NOT_MEASURABLE


def test_frontier_interpolation_on_a_known_path() -> None:
    from rankrobust.report.frontier import interpolate_path

    assert interpolate_path([0.9, 0.8], [0.2, 0.4], 0.85) == pytest.approx(0.3)
    assert interpolate_path([0.8, 0.9, 0.95], [0.4, 0.2, 0.1], 0.925) == pytest.approx(0.15)
    assert interpolate_path([0.8, 0.9], [0.4, 0.2], 0.9) == pytest.approx(0.2)
    assert math.isnan(interpolate_path([0.8, 0.9], [0.4, 0.2], 0.95))  # no overlap
    assert math.isnan(interpolate_path([], [], 0.5))


def _path_runs(adv_clean: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ℓ1+nuclear path (0.80, 0.40) – (0.90, 0.20), natural (0.95, 0.10), PGD-adv (c, 0.50);
    per-seed noise ±0.001 cancels in the means."""
    rows = []
    for seed, noise in enumerate((-0.001, 0.0, 0.001)):
        for method, params, clean, area in (
                ("natural", "{}", 0.95, 0.10), ("pgd-adv", '{"eps": 0.1}', adv_clean, 0.50),
                ("l1+nuclear", '{"lambda_l1": 0.001}', 0.80, 0.40),
                ("l1+nuclear", '{"lambda_l1": 0.0001}', 0.90, 0.20)):
            rows.append({"dataset": "d", "model": "mlp", "method": method, "method_params": params,
                         "seed": seed, "run_id": f"{method}{params}{seed}",
                         "clean_accuracy": clean + noise, "area": area + noise, "n_points": 1000})
    paths = pd.DataFrame(rows)
    chosen = paths[paths["method_params"] != '{"lambda_l1": 0.001}']
    return chosen, paths


def test_c4_at_matched_clean_accuracy_reads_the_lambda_path() -> None:
    chosen, paths = _path_runs(adv_clean=0.85)
    table = evaluate_claims(chosen, metrics=[("area", -1)], paths=paths)
    c4 = table[table["claim"] == "C4"].set_index("comparison")
    matched = c4.loc["ℓ1+nuclear − PGD-adv at PGD-adv's clean accuracy"]
    assert matched["effect"] == pytest.approx(0.30 - 0.50)  # path at 0.85: 0.30
    assert matched["verdict"] == HOLDS and matched["role"] == "primary"
    assert c4.loc["ℓ1+nuclear − PGD-adv", "effect"] == pytest.approx(0.20 - 0.50)  # plain
    chosen, paths = _path_runs(adv_clean=0.70)
    c4 = evaluate_claims(chosen, metrics=[("area", -1)], paths=paths)
    row = c4[c4["comparison"].str.contains("at PGD-adv's clean")].iloc[0]
    assert row["verdict"] == NOT_TESTABLE and "do not overlap" in row["note"]


def test_c6_compares_with_weight_decay_at_matched_clean_accuracy() -> None:
    chosen, paths = _path_runs(adv_clean=0.85)
    assert claim_verdicts(evaluate_claims(chosen, metrics=[("area", -1)], paths=paths)) \
        .set_index("claim").loc["C6", "verdict"] == NOT_TESTABLE  # no weight-decay runs
    wd = []
    for seed in range(3):
        for lam, clean, area in ((1e-3, 0.85, 0.15), (1e-4, 0.93, 0.12)):
            wd.append({"dataset": "d", "model": "mlp", "method": "weight-decay", "seed": seed,
                       "method_params": json.dumps({"lambda": lam}), "run_id": f"wd{lam}{seed}",
                       "clean_accuracy": clean, "area": area, "n_points": 1000})
    paths = pd.concat([paths, pd.DataFrame(wd)], ignore_index=True)
    table = evaluate_claims(chosen, metrics=[("area", -1)], paths=paths)
    c6 = table[(table["claim"] == "C6") & (table["role"] == "primary")].iloc[0]
    # ℓ1+nuclear's chosen setting: clean 0.90, area 0.20; weight decay's path at 0.90: 0.13125
    assert c6["effect"] == pytest.approx(0.20 - (0.15 + (0.12 - 0.15) * (0.05 / 0.08)))
    assert c6["verdict"] == HOLDS


def _interventions(adv_rank: float, keeps_rank: tuple[float, ...] = (0.2, 0.5, 0.8)) -> pd.DataFrame:
    rows = []
    for seed in range(3):
        for keep, erank in zip((0.25, 0.5, 1.0), keeps_rank, strict=True):
            rows.append({"method": "natural", "keep": keep, "normalized_effective_rank": erank,
                         "robust_accuracy": 0.3 - 0.2 * erank, "clean_accuracy": 0.6 + 0.3 * erank})
        rows.append({"method": "trades", "keep": 1.0, "normalized_effective_rank": adv_rank,
                     "robust_accuracy": 0.6 + 0.01 * seed, "clean_accuracy": 0.75})
        for r in rows[-4:]:
            r.update(seed=seed, dataset="d", model="mlp", intervention="svd", layer="all",
                     attack="pgd", norm="inf", epsilon=0.1, n=500)
    return pd.DataFrame(rows)


def test_c5_with_a_higher_adversarial_rank_is_not_testable() -> None:
    c5 = evaluate_c5(_interventions(adv_rank=0.85))
    assert list(c5["verdict"]) == [NOT_TESTABLE] and "not lower" in c5.iloc[0]["note"]


def test_c5_uses_a_measured_truncation_within_two_percent_or_says_so() -> None:
    c5 = evaluate_c5(_interventions(adv_rank=0.505)).set_index("role")
    assert c5.loc["primary", "verdict"] == HOLDS  # keep 0.5 (erank 0.5) within ±2 % of 0.505
    assert c5.loc["primary", "effect"] == pytest.approx((0.3 - 0.1) - 0.61)
    assert c5.loc["secondary", "effect"] == pytest.approx((0.3 - 0.2 * 0.5) - 0.61)  # clean 0.75
    c5 = evaluate_c5(_interventions(adv_rank=0.65)).set_index("role")
    assert c5.loc["primary", "verdict"] == NOT_TESTABLE
    assert "not measured at this keep grid" in c5.loc["primary", "note"]


def _point_db(path: Path, collapsed: bool = False) -> tuple[Path, pd.DataFrame]:
    """PGD curves made from per-point minimal budgets; ℓ1+nuclear breaks later than natural."""
    attacks = [{"attack": "pgd", "epsilons": list(EPS)}]
    out, points = [], []
    for method, grid in LAMBDAS.items():
        for k, params in enumerate(grid):
            for seed in range(3):
                cfg = _config(method, params, seed, attacks)
                rng = np.random.default_rng([seed, k, len(method)])
                scale = {"natural": 0.04, "l1+nuclear": 0.07, "pgd-adv": 0.2}[method]
                emin = rng.exponential(scale, 40)
                emin[rng.random(40) < 0.05] = 0.0  # misclassified
                emin[emin > 0.1] = np.nan  # never broken up to the largest budget
                alive = [np.isnan(emin) | (emin > e) for e in EPS]
                clean = float(np.mean(np.isnan(emin) | (emin > 0)))
                rows = [{"attack": "pgd", "norm": "inf", "epsilon": e, "options": "{}",
                         "fooling_ratio": 1 - float(a.mean()), "robust_accuracy": float(a.mean()),
                         "clean_accuracy": clean, "n": 40} for e, a in zip(EPS, alive, strict=True)]
                flag = {"collapsed": 1.0} if collapsed and method == "natural" and seed == 2 else {}
                out.append((cfg, _result(cfg, rows, clean, flag)))
                points.append(pd.DataFrame({"run_id": run_id(cfg), "attack": "pgd", "norm": "inf",
                                            "point": np.arange(40), "eps_min": emin}))
    return _write(path, out), pd.concat(points, ignore_index=True)


def test_hierarchical_bootstrap_on_per_point_results(tmp_path: Path) -> None:
    from rankrobust.report.frontier import point_areas
    from rankrobust.report.scoring import score_claims
    from rankrobust.report.stats import APPROXIMATE, BOOTSTRAP

    db, points = _point_db(tmp_path / "p.sqlite")
    tables = load_tables(db)
    with_points = score_claims(tables, points=points, resamples=2000)
    without = score_claims(tables, resamples=2000)
    key = ["claim", "scope", "metric", "comparison"]
    a = with_points.rows[with_points.rows["claim"] == "C2"].set_index(key)
    b = without.rows[without.rows["claim"] == "C2"].set_index(key)
    primary = a[a["role"] == "primary"].iloc[0]
    assert primary["test"] == BOOTSTRAP and b.loc[primary.name, "test"] == APPROXIMATE
    # the mean of the per-point areas is the area of the stored curve
    assert primary["effect"] == pytest.approx(b.loc[primary.name, "effect"], abs=1e-12)
    runs = tables.runs.set_index("run_id")
    joined = points.merge(tables.runs[["run_id", "dataset", "model"]], on="run_id")
    per = point_areas(joined, tables.robustness.merge(tables.runs[["run_id", "dataset", "model"]]),
                      {("mnist5k", "mlp"): 0.1}, "pgd")
    mean = per.groupby("run_id")["area"].mean()
    assert set(mean.index) == set(runs.index) and mean.between(0, 1).all()
    assert math.isfinite(primary["se_point"]) and primary["se_point"] > 0
    assert primary["ci_low"] < primary["effect"] < primary["ci_high"]


def test_collapsed_runs_are_left_out_with_a_count(tmp_path: Path) -> None:
    from rankrobust.report.scoring import score_claims

    db, _ = _point_db(tmp_path / "c.sqlite", collapsed=True)
    result = score_claims(load_tables(db), resamples=2000)
    c2 = result.rows[(result.rows["claim"] == "C2") & (result.rows["role"] == "primary")].iloc[0]
    assert c2["n"] == 2 and "1 collapsed run(s) left out" in c2["note"]
    assert any("collapsed" in n for n in result.notes)


def test_c1_reads_a_second_family_for_w_minus_w0() -> None:
    from rankrobust.report.summary import structure_families

    rows = []
    for run, (plain, delta) in {"a": (0.9, 0.4), "b": (0.8, 0.3)}.items():
        rows += [{"run_id": run, "epoch": 2, "layer": "fc", "normalized_effective_rank": plain,
                  "normalized_effective_sparsity": 0.5, "family": None},
                 {"run_id": run, "epoch": 2, "layer": "fc", "normalized_effective_rank": delta,
                  "normalized_effective_sparsity": 0.2, "family": "delta"},
                 {"run_id": run, "epoch": 1, "layer": "fc", "normalized_effective_rank": 0.0,
                  "normalized_effective_sparsity": 0.0, "family": None}]
    fam = structure_families(pd.DataFrame(rows)).set_index("run_id")
    assert fam.loc["a", "erank"] == pytest.approx(0.9) and fam.loc["a", "delta_erank"] == pytest.approx(0.4)
    by_prefix = pd.DataFrame([{"run_id": "a", "epoch": 1, "layer": "fc",
                               "normalized_effective_rank": 0.9, "normalized_effective_sparsity": 0.5,
                               "delta_normalized_effective_rank": 0.3}])
    assert structure_families(by_prefix).iloc[0]["delta_erank"] == pytest.approx(0.3)
    runs = pd.DataFrame([{"dataset": "d", "model": "mlp", "method": m, "seed": s, "run_id": f"{m}{s}",
                          "erank": 0.9 - (0.1 if m == "pgd-adv" else 0) + 0.001 * s,
                          "delta_erank": 0.5 - (0.2 if m == "pgd-adv" else 0) - 0.001 * s}
                         for m in ("natural", "pgd-adv") for s in range(3)])
    c1 = evaluate_claims(runs, metrics=[])
    assert set(c1["metric"]) == {"mean normalized effective rank of W",
                                 "mean normalized effective rank of W − W₀"}
    assert (c1["verdict"] == HOLDS).all()


@pytest.mark.skipif(not (DEMO.exists() and OTHER.exists()), reason="demo databases not present")
def test_the_demo_on_two_machines_gives_the_same_verdicts_or_borderline() -> None:
    from rankrobust.report.scoring import score_claims

    one, two = (score_claims(load_tables(p)) for p in (DEMO, OTHER))
    key = ["claim", "scope", "metric", "comparison"]
    rows = one.rows.merge(two.rows, on=key, suffixes=("_a", "_b"))
    assert len(rows) == len(one.rows) == len(two.rows)
    primary = rows[rows["role_a"] == "primary"]
    differ = primary[primary["verdict_a"] != primary["verdict_b"]]
    assert (differ["borderline_a"] & differ["borderline_b"]).all(), differ[key]
    claims = one.verdicts.merge(two.verdicts, on="claim")
    same = claims["verdict_x"] == claims["verdict_y"]
    both = claims["verdict_x"].str.contains("borderline") & claims["verdict_y"].str.contains("borderline")
    assert (same | both).all(), claims
    assert one.attack == "pgd" and "autoattack" in one.notes[0]  # one ε only: PGD's curve


def test_declared_margins_decide_negligible_and_are_printed() -> None:
    from rankrobust.experiments.margins import Margin, Margins
    from rankrobust.report.scoring import margins_table

    rows = [{"dataset": "d", "model": "mlp", "method": m, "seed": s, "run_id": f"{m}{s}",
             "area": 0.40 + (0.004 if m == "l1+nuclear" else 0.0) + 0.003 * ((s * 7 + len(m)) % 3 - 1),
             "n_points": 1000} for m in ("natural", "l1+nuclear") for s in range(5)]
    runs = pd.DataFrame(rows)
    wide = Margins(Margin("natural-share", 0.25), Margin("natural-share", 0.02), "declared")

    def c2(margins: Any) -> pd.Series:
        table = evaluate_claims(runs, metrics=[("area", -1)], margins=margins)
        return table[table["claim"] == "C2"].iloc[0]

    default, declared = c2(None), c2(wide)
    assert declared["margin"] == pytest.approx(0.25 * 0.40, rel=0.01)
    assert default["margin"] == pytest.approx(2 * math.sqrt(0.4 * 0.6 / 1000), rel=0.01)
    assert declared["ci_low"] < 0 < declared["ci_high"] and declared["verdict"] == "negligible"
    assert default["verdict"] == "inconclusive"
    printed = margins_table(wide)
    assert list(printed["source"]) == ["declared", "declared"] and "25 %" in printed.iloc[0]["rule"]


def test_an_empty_study_has_no_rows_and_says_why() -> None:
    from rankrobust.report.scoring import score_claims
    from rankrobust.report.tables import StudyTables

    result = score_claims(StudyTables())
    assert result.rows.empty and set(result.verdicts["verdict"]) == {NOT_TESTABLE}
    assert "no weight-decay runs" in result.verdicts.set_index("claim").loc["C6", "detail"]


def test_run_summary_erank_reads_w_only_never_w_minus_w0_rows() -> None:
    """W − W₀ rows stored in the structure table (a family column, or delta-prefixed layers)
    must not be averaged into the erank of W that C1, the correlations and the figures read."""
    from rankrobust.report.summary import run_summary, weight_rows
    from rankrobust.report.tables import StudyTables

    structure = pd.DataFrame([
        {"run_id": "a", "epoch": 1, "layer": "fc1", "normalized_effective_rank": 0.9,
         "normalized_effective_sparsity": 0.6, "family": None},
        {"run_id": "a", "epoch": 1, "layer": "fc1", "normalized_effective_rank": 0.1,
         "normalized_effective_sparsity": 0.2, "family": "delta"},
        {"run_id": "a", "epoch": 1, "layer": "delta_fc2", "normalized_effective_rank": 0.3,
         "normalized_effective_sparsity": 0.2, "family": None}])
    runs = pd.DataFrame([{"run_id": "a", "status": "done", "dataset": "synthetic", "model": "mlp",
                          "method": "natural", "method_params": "{}", "seed": 0,
                          "clean_accuracy": 0.9}])
    summary = run_summary(StudyTables(runs=runs, structure=structure)).iloc[0]
    assert summary["erank"] == pytest.approx(0.9) and summary["esparsity"] == pytest.approx(0.6)
    assert summary["delta_erank"] == pytest.approx(0.2)
    assert list(weight_rows(structure)["normalized_effective_rank"]) == [0.9]  # what figures draw
