"""The report says exactly what it measured: each finding of the science review, pinned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rankrobust.experiments.config import run_config_from_dict
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult
from rankrobust.experiments.store import ResultsStore
from rankrobust.report.build import FIGURE_NAMES, build_report
from rankrobust.report.claims import (
    FAILS,
    HOLDS,
    NEGLIGIBLE,
    Effect,
    combine,
    evaluate_claims,
    robustness_metrics,
    verdict,
)
from rankrobust.report.evaluation import attack_settings
from rankrobust.report.figures import _ci
from rankrobust.report.summary import run_summary
from rankrobust.report.tables import StudyTables
from test_report_build import make_db


def test_an_effect_inside_the_margin_is_negligible_only_when_its_ci_contains_zero() -> None:
    # changed rule (#18): a CI that excludes 0 holds or does not hold, however small
    assert verdict(Effect(-0.003, -0.004, -0.001, 3, "paired t"), -1, 0.005) == HOLDS
    assert verdict(Effect(0.003, 0.001, 0.004, 3, "paired t"), -1, 0.005) == FAILS
    assert verdict(Effect(0.0, -0.004, 0.004, 3, "paired t"), -1, 0.005) == NEGLIGIBLE
    assert verdict(Effect(-0.02, -0.03, -0.01, 3, "paired t"), -1, 0.005) == HOLDS
    assert combine([NEGLIGIBLE, NEGLIGIBLE]) == NEGLIGIBLE
    assert combine([NEGLIGIBLE, FAILS]) == FAILS
    assert combine([NEGLIGIBLE, HOLDS]) != HOLDS


def test_confidence_bands_are_clipped_to_the_unit_interval() -> None:
    mean, low, high = _ci(pd.Series([0.99, 1.0, 0.97]))
    assert 0.0 <= low <= mean <= high <= 1.0
    mean, low, high = _ci(pd.Series([0.0, 0.02, 0.0]))
    assert low == 0.0


def _claim_runs() -> pd.DataFrame:
    """FC natural 0.75 → 0.65 and CNN natural 0.57 → 0.47: the same absolute gain (0.10), a
    larger relative one for the CNN (17.5 % vs 13.3 %)."""
    rows = []
    for model, nat in (("mlp", 0.75), ("lenet5", 0.57)):
        for seed in range(4):
            noise = 0.002 * (seed - 1.5)
            for method, fr in (("natural", nat), ("l1+nuclear", nat - 0.10)):
                rows.append({"dataset": "d", "model": model, "method": method, "seed": seed,
                             "fr_auc_pgd_inf": fr + noise, "ra_auc_pgd_inf": 0.9 - fr - noise,
                             "erank": 0.5, "esparsity": 0.5})
    return pd.DataFrame(rows)


def test_c3_adds_a_relative_gain_row_and_robust_accuracy_rows() -> None:
    sizes = pd.DataFrame({"dataset": "d", "model": ["mlp", "lenet5"], "family": ["FC", "CNN"],
                          "parameters": [100_000.0, 90_000.0]})  # matched: −10 %
    table = evaluate_claims(_claim_runs(), metrics=robustness_metrics("pgd"), sizes=sizes)
    c3 = table[table["claim"] == "C3"].set_index("metric")
    assert set(c3.index) == {"gain in fr_auc_pgd_inf", "relative gain in fr_auc_pgd_inf (÷ natural's mean)",
                             "gain in ra_auc_pgd_inf", "relative gain in ra_auc_pgd_inf (÷ natural's mean)"}
    assert abs(c3.loc["gain in fr_auc_pgd_inf", "effect"]) < 1e-9  # equal absolute gains
    relative = c3.loc["relative gain in fr_auc_pgd_inf (÷ natural's mean)", "effect"]
    assert relative == pytest.approx(0.10 / 0.57 - 0.10 / 0.75, rel=1e-6)
    c2 = table[table["claim"] == "C2"]
    assert set(c2["metric"]) == {"fr_auc_pgd_inf", "ra_auc_pgd_inf"}
    assert (c2["verdict"] == HOLDS).all()  # lower fooling ratio and higher robust accuracy


def _runs_with_accuracy(accs: dict[str, float]) -> StudyTables:
    runs = pd.DataFrame([{"run_id": k, "dataset": "mnist5k", "model": "mlp", "method": "natural",
                          "method_params": "{}", "seed": 0, "clean_accuracy": v}
                         for k, v in accs.items()])
    return StudyTables(runs=runs)


def test_models_near_chance_are_flagged_degenerate() -> None:
    summary = run_summary(_runs_with_accuracy({"a": 0.95, "b": 0.19, "c": 0.21}))
    assert summary.set_index("run_id")["degenerate"].to_dict() == {"a": False, "b": True, "c": False}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("trust")
    db = make_db(root / "r.db", seeds=(0, 1), failed=False)
    figures = root / "out" / "figures"
    figures.mkdir(parents=True)
    (figures / "mine.png").write_bytes(b"not the report's")
    build_report(db, root / "out")
    return root / "out", (root / "out" / "report.md").read_text()


def test_report_states_its_attack_settings_and_metric_definition(report: tuple[Path, str]) -> None:
    _, md = report
    section = md.split("Evaluation settings")[0]
    assert "| attack | norm | steps | restarts | points | epsilons |" in md
    assert "average height" in section and "[0, ε_train]" in section


def test_report_says_when_the_masking_checks_did_not_run(report: tuple[Path, str]) -> None:
    _, md = report
    assert "did **not** run" in md
    assert "No run stored a sanity-check warning" not in md


def test_report_deletes_only_the_figures_it_writes(report: tuple[Path, str]) -> None:
    out, _ = report
    assert (out / "figures" / "mine.png").read_bytes() == b"not the report's"
    assert {p.name for p in (out / "figures").glob("*.png")} <= {*FIGURE_NAMES, "mine.png"}


def _smoke_db(path: Path) -> Path:
    with ResultsStore(path) as store:
        for seed in (0, 1):
            for method in ("natural", "l1+nuclear"):
                train = {"epochs": 1, "seed": seed, "method": {"name": method}}
                config = run_config_from_dict({"dataset": "synthetic", "model": "mlp", "train": train})
                store.register([config])
                fr = 0.5 if method == "natural" else 0.2 + 0.01 * seed
                store.record(RunResult(
                    run_id=run_id(config), status="complete", clean_accuracy=0.9,
                    robustness=[{"attack": "pgd", "norm": "inf", "epsilon": e, "fooling_ratio": fr * e,
                                 "robust_accuracy": 0.9 - fr * e, "options": "{}"} for e in (0.0, 0.1)]))
    return path


def test_a_smoke_report_is_a_pipeline_check_without_verdicts(tmp_path: Path) -> None:
    build_report(_smoke_db(tmp_path / "s.db"), tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Pipeline check, not a result" in md
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert len(claims) and (claims["verdict"] == "– (pipeline check)").all()
    for word in ("| holds |", "| does not hold |", "| negligible |"):
        assert word not in md


def test_attack_settings_table_lists_steps_points_and_grid() -> None:
    config = json.dumps({"evaluation": {"n": 300, "deepfool": True, "attacks": [
        {"attack": "pgd", "norm": "inf", "epsilons": [0.1, 0.3], "options": {"steps": 20, "restarts": 1}},
        {"attack": "autoattack", "norm": "inf", "epsilons": [0.1], "n": 100,
         "options": {"n_targets": 3, "n_queries": 500}}]}})
    parsed = json.loads(config)  # configs reach the report parsed and checked (report.stored)
    table = attack_settings(pd.DataFrame({"config": [parsed, parsed]}))
    assert table.iloc[0].to_dict() == {"attack": "pgd", "norm": "inf", "steps": 20, "restarts": 1,
                                       "points": 300, "epsilons": "0.1, 0.3", "options": "–"}
    # an attack on fewer points says so, with the options that set its strength
    assert table.iloc[1].to_dict() == {"attack": "autoattack", "norm": "inf", "steps": "default",
                                       "restarts": "default", "points": 100, "epsilons": "0.1",
                                       "options": "n_queries 500, n_targets 3"}
    assert len(table) == 3 and np.isin(["deepfool (ρ_adv)"], table["attack"]).all()


def test_lambda_is_chosen_on_validation_accuracy_not_on_the_test_split() -> None:
    from rankrobust.report.summary import select_lambdas

    rows = []
    for seed in (0, 1):
        rows.append({"method": "natural", "lam": None, "test": 0.90, "val": 0.90, "seed": seed})
        # λ = 1e-2 looks fine on the test split but costs 5 points on validation
        rows.append({"method": "l1", "lam": 1e-3, "test": 0.89, "val": 0.895, "seed": seed})
        rows.append({"method": "l1", "lam": 1e-2, "test": 0.895, "val": 0.85, "seed": seed})
    frame = pd.DataFrame([{"dataset": "d", "model": "m", "method": r["method"], "seed": r["seed"],
                           "method_params": json.dumps({"lambda_l1": r["lam"]} if r["lam"] else {}),
                           "setting": f"lambda_l1={r['lam']:g}" if r["lam"] else "",
                           "clean_accuracy": r["test"], "final_val_acc": r["val"]} for r in rows])
    chosen = select_lambdas(frame).query("selected").iloc[0]
    assert (chosen["setting"], chosen["selected_on"]) == ("lambda_l1=0.001", "validation")
    on_test = select_lambdas(frame.drop(columns="final_val_acc")).query("selected").iloc[0]
    assert (on_test["setting"], on_test["selected_on"]) == ("lambda_l1=0.01", "test")


def test_validation_split_is_fixed_disjoint_and_never_trained_on() -> None:
    import torch

    from rankrobust.training.fit import split_validation

    x = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1)
    y = torch.arange(50)
    (xt, yt), (xv, yv) = split_validation((x, y), 10)
    (_, yt2), (_, yv2) = split_validation((x, y), 10)
    assert torch.equal(yv, yv2) and torch.equal(yt, yt2)  # the same for every run
    assert len(yv) == 10 and len(yt) == 40 and not set(yv.tolist()) & set(yt.tolist())
    assert torch.equal(xv.view(-1).long(), yv)


def _intervention_rows() -> pd.DataFrame:
    """Natural: robust accuracy rises as its rank is cut (0.2 → 0.4); PGD-adv: 0.7 at erank 0.3."""
    rows = []
    for seed in range(3):
        for keep, erank, ra in ((0.1, 0.1, 0.40 + 0.01 * seed), (0.5, 0.3, 0.30), (1.0, 0.8, 0.20)):
            rows.append({"method": "natural", "keep": keep, "normalized_effective_rank": erank,
                         "robust_accuracy": ra})
        rows.append({"method": "pgd-adv", "keep": 1.0, "normalized_effective_rank": 0.3 + 0.001 * seed,
                     "robust_accuracy": 0.70 + 0.01 * seed})
        for r in rows[-4:]:
            r.update(seed=seed, dataset="d", model="mlp", intervention="svd", layer="all",
                     attack="pgd", norm="inf", epsilon=0.1)
    return pd.DataFrame(rows)


def test_c5_compares_a_rank_cut_natural_network_with_adversarial_training() -> None:
    from rankrobust.report.claims import evaluate_c5

    frame = _intervention_rows()
    c5 = evaluate_c5(frame)
    c5 = c5[c5["role"] == "primary"]  # the truncation measured at the adversarial net's rank
    assert list(c5["claim"]) == ["C5"] and c5.iloc[0]["verdict"] == HOLDS
    assert c5.iloc[0]["effect"] == pytest.approx(0.30 - 0.71, abs=0.01)
    assert "pgd" in c5.iloc[0]["metric"] and "PGD-adv" in c5.iloc[0]["comparison"]


def test_a_study_stores_intervention_tables_per_run(tmp_path: Path) -> None:
    from rankrobust.experiments.run import execute_run

    config = run_config_from_dict({
        "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1, "device": "cpu"},
        "evaluation": {"n": 32, "batch_size": 32, "interventions": [
            {"kind": "svd", "keeps": [0.5, 1.0], "attack": "fgsm", "eps": 0.1, "deepfool": False}]},
    })
    result = execute_run(config)
    assert result.ok, result.error
    assert [r["keep"] for r in result.interventions] == [0.5, 1.0]
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.register([config])
        store.record(result)
        stored = store.interventions()
    assert list(stored["keep"]) == [0.5, 1.0] and set(stored["layer"]) == {"all"}
    assert stored["robust_accuracy"].between(0, 1).all()
    with pytest.raises(Exception, match="keeps"):
        run_config_from_dict({"evaluation": {"interventions": [{"kind": "svd", "keeps": [0, 1]}]}})
