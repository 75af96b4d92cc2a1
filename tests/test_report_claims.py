"""Statistics, λ selection and claims of the report, against scipy and hand-made cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from conftest import examples
from rankrobust.report.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NEGLIGIBLE,
    NOT_TESTABLE,
    Effect,
    claim_verdicts,
    combine,
    evaluate_claims,
    t_interval,
    verdict,
)
from rankrobust.report.document import Document, Table
from rankrobust.report.html import render_html
from rankrobust.report.markdown import render_markdown
from rankrobust.report.summary import comparison_runs, curve_area, select_lambdas, setting


def test_t_interval_matches_scipy_and_closed_form() -> None:
    mean, low, high = t_interval(np.array([1.0, 2.0, 3.0]))
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # s = 1
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    rng = np.random.default_rng(0)
    v = rng.normal(size=7)
    ref = stats.t.interval(0.95, 6, loc=v.mean(), scale=stats.sem(v))
    assert t_interval(v)[1:] == pytest.approx(ref)
    assert math.isnan(t_interval(np.array([1.0]))[1])


@settings(max_examples=examples(200), deadline=None)
@given(st.floats(-5, 5), st.floats(0, 5), st.sampled_from([-1, 1]), st.integers(0, 5))
def test_verdict_follows_the_interval(center: float, half: float, direction: int, n: int) -> None:
    eff = Effect(center, center - half, center + half, n, "paired t")
    v = verdict(eff, direction)
    if n < 2:
        assert v == INCONCLUSIVE
    elif direction * (center - half) > 0 and direction * (center + half) > 0:
        assert v == HOLDS
    elif direction * (center - half) < 0 and direction * (center + half) < 0:
        assert v == FAILS
    else:
        assert v == INCONCLUSIVE
    assert verdict(eff, -direction) != v or v == INCONCLUSIVE


def test_verdict_margin_and_combination() -> None:
    tiny = Effect(0.0, -0.002, 0.003, 3, "paired t")
    assert verdict(tiny, -1, margin=0.005) == NEGLIGIBLE
    assert verdict(tiny, -1) == INCONCLUSIVE
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    # changed rule (#18): an inconclusive row does not say "does not hold"
    assert combine([FAILS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([FAILS, FAILS]) == FAILS
    assert combine([]) == INCONCLUSIVE


def test_curve_area_is_the_mean_over_the_budget_range() -> None:
    eps = np.array([0.2, 0.0, 0.1])
    assert curve_area(eps, np.full(3, 0.4)) == pytest.approx(0.4)
    assert curve_area(eps, eps / 0.2) == pytest.approx(0.5)  # linear ramp 0 → 1
    assert curve_area(np.array([0.1]), np.array([0.3])) == pytest.approx(0.3)


def _summary(rows: list[tuple[str, str, float, float, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["model", "method", "lambda_l1", "lambda_nuclear", "seed",
                                        "clean_accuracy"])
    frame["dataset"] = "d"
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    frame["method_params"] = [
        json.dumps({k: v for k, v in (("lambda_l1", l1), ("lambda_nuclear", nuc)) if v})
        for l1, nuc in zip(frame["lambda_l1"], frame["lambda_nuclear"], strict=True)]
    frame["setting"] = [setting(m, p) for m, p in zip(frame["method"], frame["method_params"],
                                                      strict=True)]
    return frame.drop(columns=["lambda_l1", "lambda_nuclear"])


def test_lambda_rule_largest_within_tolerance_else_most_accurate() -> None:
    rows = [("m", "natural", 0, 0, s, 0.90) for s in (0, 1)]
    rows += [("m", "l1", lam, 0, s, acc) for lam, acc in ((1e-4, 0.90), (1e-3, 0.885), (1e-2, 0.70))
             for s in (0, 1)]
    rows += [("m", "nuclear", 0, lam, s, acc) for lam, acc in ((1.0, 0.80), (3.0, 0.60)) for s in (0, 1)]
    sel = select_lambdas(_summary(rows))
    chosen = sel[sel["selected"]].set_index("method")
    assert chosen.loc["l1", "setting"] == "lambda_l1=0.001" and not chosen.loc["l1", "fallback"]
    assert chosen.loc["nuclear", "setting"] == "lambda_nuclear=1" and chosen.loc["nuclear", "fallback"]
    runs = comparison_runs(_summary(rows), sel)
    assert sorted(runs["method"]) == ["l1", "l1", "natural", "natural", "nuclear", "nuclear"]


def _claim_runs(adv_rank: float, reg_fr: float) -> pd.DataFrame:
    rows = []
    for model, gain in (("mlp", 1.0), ("lenet5", 2.0)):
        for seed in range(3):
            noise = 0.001 * seed
            rows += [
                {"model": model, "method": "natural", "erank": 0.8 + noise, "esparsity": 0.7 + noise,
                 "fr_auc_pgd_inf": 0.5 + noise},
                {"model": model, "method": "pgd-adv", "erank": adv_rank - noise, "esparsity": 0.6,
                 "fr_auc_pgd_inf": 0.1 + noise},
                {"model": model, "method": "l1+nuclear", "erank": 0.7, "esparsity": 0.6,
                 "fr_auc_pgd_inf": 0.5 - gain * (0.5 - reg_fr) - noise * 2},
            ]
            for r in rows[-3:]:
                r.update(dataset="d", seed=seed)
    return pd.DataFrame(rows)


# mlp and lenet5 given equal capacity (parameter counts within ±15 %): C3 is scored on the pair
SIZES = pd.DataFrame({"dataset": "d", "model": ["mlp", "lenet5"], "family": ["FC", "CNN"],
                      "parameters": [100_000.0, 104_000.0]})


def test_claims_hold_fail_and_are_reported_honestly() -> None:
    good = evaluate_claims(_claim_runs(adv_rank=0.6, reg_fr=0.4), metrics=[("fr_auc_pgd_inf", +1)],
                           sizes=SIZES)
    assert claim_verdicts(good).set_index("claim")["verdict"].to_dict() == {
        "C1": HOLDS, "C2": HOLDS, "C3": HOLDS, "C4": HOLDS,
        "C5": NOT_TESTABLE, "C6": NOT_TESTABLE}  # no intervention tables, no weight decay
    bad = evaluate_claims(_claim_runs(adv_rank=0.95, reg_fr=0.6), metrics=[("fr_auc_pgd_inf", +1)],
                          sizes=SIZES)
    rank_rows = bad[(bad["claim"] == "C1") & bad["metric"].str.contains("rank")]
    assert (rank_rows["verdict"] == FAILS).all() and (rank_rows["effect"] > 0).all()
    summary = claim_verdicts(bad).set_index("claim")["verdict"]
    assert summary["C1"] == INCONCLUSIVE  # rank fails, sparsity holds: mixed
    assert summary["C2"] == FAILS and summary["C3"] == FAILS


def test_markdown_and_html_escape_cells() -> None:
    doc = Document("T <b>")
    doc.add(Table(pd.DataFrame({"a": ["x|y", "<script>"], "verdict": ["holds", "does not hold"]}),
                  "t1"))
    md, html = render_markdown(doc), render_html(doc)
    assert "x\\|y" in md and "<script>" not in html.split("</script>")[-1]
    assert "&lt;script&gt;" in html and 'class="verdict-does-not-hold"' in html
