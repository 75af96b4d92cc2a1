"""Scoring rules (#18): the bootstrap against brute force, verdicts, combination, margins."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankrobust.errors import ConfigError
from rankrobust.experiments.margins import DEFAULT_MARGINS, Margin, margins_from_json, parse_margins
from rankrobust.experiments.store import ResultsStore
from rankrobust.experiments.study_config import study_from_dict, study_to_dict
from rankrobust.report.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NEGLIGIBLE,
    Effect,
    combine,
    verdict,
)
from rankrobust.report.stats import (
    NOT_MEASURABLE,
    NOT_TESTABLE,
    Resampler,
    binomial_sd,
    combine_rules,
    is_borderline,
    is_small,
)


def _exact(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every equally likely outcome of 'draw S seeds, then P points, with replacement' of the
    paired difference of arms a, b (S × P): (values, probabilities), by enumeration."""
    s, p = a.shape
    d = a - b
    values = [float(np.mean(d[np.ix_(seeds, points)]))
              for seeds in itertools.product(range(s), repeat=s)
              for points in itertools.product(range(p), repeat=p)]
    return np.array(values), np.full(len(values), 1.0 / len(values))


def test_hierarchical_bootstrap_matches_the_enumerated_distribution() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2, (2, 3)).astype(float) + np.array([[0.0], [0.5]])
    b = rng.integers(0, 2, (2, 3)).astype(float)
    values, prob = _exact(a, b)  # 4 seed draws × 27 point draws
    resampler = Resampler(["s0", "s1"], [10, 11, 12], resamples=20_000)
    draws = (resampler.mean(a, ["s0", "s1"], [10, 11, 12])
             - resampler.mean(b, ["s0", "s1"], [10, 11, 12]))
    grid = np.unique(values)
    exact_cdf = np.array([prob[values <= x].sum() for x in grid])
    boot_cdf = np.array([(draws <= x + 1e-12).mean() for x in grid])
    # DKW: P(sup |F_B − F| > 0.015) ≤ 2·exp(−2·20000·0.015²) ≈ 2e-4; fixed generator seed
    assert np.max(np.abs(exact_cdf - boot_cdf)) < 0.015
    assert draws.mean() == pytest.approx(np.sum(values * prob), abs=0.01)
    assert draws.var() == pytest.approx(np.sum((values - np.sum(values * prob)) ** 2 * prob), rel=0.05)


def test_each_resample_is_the_mean_over_its_drawn_seeds_and_points() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5))
    resampler = Resampler([7, 8, 9], list(range(5)), resamples=50)
    got = resampler.mean(x, [7, 8, 9], list(range(5)))
    for b in range(50):
        seeds = np.repeat(np.arange(3), resampler.seed_counts[b].astype(int))
        points = np.repeat(np.arange(5), resampler.point_counts[b].astype(int))  # type: ignore[index]
        assert got[b] == pytest.approx(x[np.ix_(seeds, points)].mean())
    # an arm with a subset of the seeds and points keeps the same draws for those labels
    sub = resampler.mean(x[1:, 2:], [8, 9], [2, 3, 4])
    c, p = resampler.seed_counts[:, 1:], resampler.point_counts[:, 2:]  # type: ignore[index]
    with np.errstate(invalid="ignore"):  # a resample that drew neither seed: NaN in both
        ref = np.einsum("bs,sp,bp->b", c, x[1:, 2:], p) / (c.sum(1) * p.sum(1))
    np.testing.assert_allclose(sub, ref)


def test_bootstrap_is_deterministic_and_counts_seeds_once_when_fixed() -> None:
    x = np.arange(12.0).reshape(3, 4)
    one = Resampler([0, 1, 2], [0, 1, 2, 3]).mean(x, [0, 1, 2], [0, 1, 2, 3])
    two = Resampler([0, 1, 2], [0, 1, 2, 3]).mean(x, [0, 1, 2], [0, 1, 2, 3])
    assert one.shape == (4000,) and np.array_equal(one, two)
    fixed = Resampler([0, 1, 2], [0, 1, 2, 3], fixed_seeds=True)
    assert (fixed.seed_counts == 1).all()


def test_binomial_noise_bound() -> None:
    sd = binomial_sd([(1.0, np.array([0.5, 0.5]), 100), (-1.0, np.array([0.9, 0.9]), 100)])
    assert sd == pytest.approx(math.sqrt(0.25 / 100 + 0.09 / 100))
    assert math.isnan(binomial_sd([(1.0, np.array([0.5]), math.nan)]))


def test_a_ci_excluding_zero_inside_the_old_margin_is_not_negligible() -> None:
    # LeNet-5 FGSM-adv − natural erank: +0.0029, CI [+0.0012, +0.0046], old margin ±0.005
    eff = Effect(0.0029, 0.0012, 0.0046, 3, "paired t")
    assert verdict(eff, -1, 0.005) == FAILS
    assert is_small(eff, 0.005) and not is_small(eff, 0.001)
    assert verdict(Effect(-0.003, -0.004, -0.001, 3, "t"), -1, 0.005) == HOLDS


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.floats(-1, 1), st.floats(0, 1), st.floats(0, 0.5), st.sampled_from([-1, 1]))
def test_verdict_never_calls_an_interval_excluding_zero_negligible(
        center: float, half: float, margin: float, direction: int) -> None:
    eff = Effect(center, center - half, center + half, 5, "t")
    v = verdict(eff, direction, margin)
    if center - half > 0 or center + half < 0:
        assert v in (HOLDS, FAILS)
    else:
        assert v in (NEGLIGIBLE, INCONCLUSIVE)
        assert (v == NEGLIGIBLE) == (margin > 0 and -margin <= center - half and center + half <= margin)


def test_negligible_and_inconclusive_rows_do_not_make_does_not_hold() -> None:
    assert combine([NEGLIGIBLE, INCONCLUSIVE]) != FAILS
    assert combine([NEGLIGIBLE, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([FAILS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([FAILS, NEGLIGIBLE]) == FAILS
    assert combine([HOLDS, NOT_MEASURABLE]) == HOLDS  # a row that cannot measure is set aside
    assert combine([NOT_MEASURABLE, NOT_TESTABLE]) == NOT_MEASURABLE
    assert combine([NOT_TESTABLE]) == NOT_TESTABLE
    assert len(combine_rules()) >= 3 and all(isinstance(r, str) for r in combine_rules())


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from([HOLDS, FAILS, NEGLIGIBLE, INCONCLUSIVE, NOT_MEASURABLE,
                                 NOT_TESTABLE]), max_size=6))
def test_does_not_hold_needs_a_row_that_says_so_and_no_supporting_or_open_row(rows: list[str]) -> None:
    result = combine(rows)
    if result == FAILS:
        assert FAILS in rows and HOLDS not in rows and INCONCLUSIVE not in rows
    if result == HOLDS:
        assert HOLDS in rows and FAILS not in rows and INCONCLUSIVE not in rows


def test_borderline_when_the_ci_edge_is_within_one_point_se_of_zero() -> None:
    assert is_borderline(Effect(0.03, 0.005, 0.05, 3, "b", se_point=0.01))
    assert not is_borderline(Effect(0.03, 0.015, 0.05, 3, "b", se_point=0.01))
    assert is_borderline(Effect(-0.02, -0.05, 0.004, 3, "b", se_point=0.01))
    assert not is_borderline(Effect(0.03, 0.015, 0.05, 3, "b"))  # unknown SE: not flagged


def test_margins_scale_and_validation() -> None:
    assert Margin("binomial-se", 2.0).value(0.5, 100) == pytest.approx(2 * 0.05)
    assert Margin("natural-share", 0.02).value(-0.9) == pytest.approx(0.018)
    assert math.isnan(Margin("binomial-se", 2.0).value(0.5, None))
    declared = parse_margins({"robustness": {"scale": "natural-share", "factor": 0.05}})
    assert declared.source == "declared" and declared.structure == DEFAULT_MARGINS.structure
    for bad, match in (({"robustnes": {}}, "did you mean 'robustness'"),
                       ({"robustness": {"scale": "sigma", "factor": 1}}, "robustness.scale"),
                       ({"structure": {"scale": "binomial-se", "factor": 1}}, "natural-share"),
                       ({"robustness": {"scale": "binomial-se", "factor": -1}}, "factor")):
        with pytest.raises(ConfigError, match=match):
            parse_margins(bad)
    assert margins_from_json(None) == DEFAULT_MARGINS


def test_a_study_declares_margins_and_the_store_keeps_the_first(tmp_path: Path) -> None:
    data = {"name": "m", "margins": {"structure": {"scale": "natural-share", "factor": 0.01}}}
    study = study_from_dict(data)
    assert study.margins == data["margins"] and study_to_dict(study)["margins"] == data["margins"]
    with pytest.raises(ConfigError, match="margins.structure.factor"):
        study_from_dict({"margins": {"structure": {"scale": "natural-share", "factor": "x"}}})
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert store.declared_margins() is None
        store.declare_margins(data["margins"])
        store.declare_margins(data["margins"])  # a resumed sweep declares the same: fine
        with pytest.raises(ConfigError, match="fixed before the run"):
            store.declare_margins({"structure": {"scale": "natural-share", "factor": 0.5}})
        record = store.declared_margins()
    assert record is not None and "declared_at" in json.loads(record)
    assert margins_from_json(record).structure == Margin("natural-share", 0.01)


def test_a_sweep_stores_the_declared_margins_before_its_runs(tmp_path: Path) -> None:
    from rankrobust.experiments import run_sweep
    from rankrobust.report.scoring import margins_table, read_margins

    study = {"name": "m", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [4]},
             "train": {"epochs": 1, "batch_size": 128, "device": "cpu"}, "evaluation": {"n": 16},
             "margins": {"robustness": {"scale": "natural-share", "factor": 0.05}}}
    run_sweep(study_from_dict(study), out=tmp_path, progress=False)
    db = tmp_path / "results.sqlite"
    margins = read_margins(str(db))
    assert margins.source == "declared" and margins.robustness == Margin("natural-share", 0.05)
    table = margins_table(margins).set_index("family")
    assert table.loc["robustness", "source"] == "declared" and "5 %" in table.loc["robustness", "rule"]
    study["margins"] = {"robustness": {"scale": "natural-share", "factor": 0.5}}
    with pytest.raises(ConfigError, match="fixed before the run"):
        run_sweep(study_from_dict(study), out=tmp_path, progress=False)
