"""What the README promises, checked through the public surface (``build_report``, the CLI and
``evaluate_claims``), so that the tests survive a rewrite of the report's internals:

- the claims use the strongest stored attack (AutoAttack > APGD > PGD > FGSM);
- Spearman's ρ leaves degenerate runs (clean accuracy within 10 points of chance) out;
- the equivalence margins go through ``evaluate_claims`` (negligible only when the CI holds 0);
- the report lists the masking checks' warnings when the checks ran;
- ``RANKROBUST_DEBUG=1`` shows a traceback of a user error;
- ``sweep`` exits 1 when a run failed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from rankrobust.cli.main import main
from rankrobust.experiments.config import run_config_from_dict
from rankrobust.experiments.store import ResultsStore
from rankrobust.report.build import build_report
from rankrobust.report.claims import HOLDS, NEGLIGIBLE, evaluate_claims, robustness_metrics
from test_report_build import EPS, LAYERS, METHODS, _result

# AutoAttack's fooling ratio at its one ε per method: deliberately unlike the PGD curves of
# _result, so a claim computed from PGD cannot match these numbers by accident.
AA_FR = {"natural": 0.80, "fgsm-adv": 0.30, "pgd-adv": 0.20, "l1": 0.70, "nuclear": 0.65,
         "l1+nuclear": 0.55}
SEEDS = (0, 1, 2)
DEGENERATE = ("l1", 0.1, 0.0)  # a third, far too strong λ₁: models near chance (10 %)
WARNING = "square broke 3 of 64 inputs at eps=0.1 that the gradient attacks missed"


def _config(model: str, method: str, l1: float, nuc: float, seed: int):  # noqa: ANN202
    params = {k: v for k, v in (("lambda_l1", l1), ("lambda_nuclear", nuc)) if v}
    if method in ("fgsm-adv", "pgd-adv"):
        params = {"eps": 0.1}
    attacks = [{"attack": a, "norm": n, "epsilons": EPS[n],
                "options": {"steps": 7} if a == "pgd" else {}}
               for a, n in (("fgsm", "inf"), ("fgsm", "2"), ("pgd", "inf"))]
    attacks.append({"attack": "autoattack", "norm": "inf", "epsilons": [0.05, 0.1]})
    return run_config_from_dict({
        "dataset": "mnist5k", "model": model,
        "train": {"epochs": 2, "seed": seed, "method": {"name": method, **params}},
        "evaluation": {"n": 64, "attacks": attacks, "sanity_checks": ["autoattack"]}})


def _aa_rows(method: str, seed: int, degenerate: bool) -> list[dict[str, object]]:
    """AutoAttack at ε 0.05 and 0.1 (ε_train): fooling ratio f/2 and f."""
    fr = 0.0 if degenerate else AA_FR[method] + 0.01 * seed  # a constant model is never fooled
    return [{"attack": "autoattack", "norm": "inf", "epsilon": e, "fooling_ratio": fr * share,
             "fooling_ratio_correct": fr * share, "robust_accuracy": 0.9 * (1 - fr * share),
             "clean_accuracy": 0.9, "n": 64, "options": "{}"}
            for e, share in ((0.05, 0.5), (0.1, 1.0))]


def _area(fr: float) -> float:
    """The robust-accuracy area over [0, 0.1] of _aa_rows (trapezoids, clean accuracy 0.9 at
    ε 0, normalised by ε_train): (0.9 + 2·0.9(1 − f/2) + 0.9(1 − f)) / 4 = 0.9 − 0.45 f."""
    return 0.9 - 0.45 * fr


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, pd.DataFrame]:
    """A database with AutoAttack curves beside FGSM and PGD, masking warnings on the pgd-adv
    runs, and six degenerate runs; its report.md; and the degenerate flags per run."""
    root = tmp_path_factory.mktemp("promises")
    cases = [(mo, me, l1, nuc, s) for mo in LAYERS for me, l1, nuc in (*METHODS, DEGENERATE)
             for s in SEEDS]
    flags = []
    with ResultsStore(root / "results.sqlite") as store:
        configs = [_config(*case) for case in cases]
        store.register(configs)
        for config, case in zip(configs, cases, strict=True):
            model, method, l1, _, seed = case
            degenerate = (method, l1) == DEGENERATE[:2]
            result = _result(config, *case)
            result.robustness.extend(_aa_rows(method, seed, degenerate))
            changes: dict[str, object] = {}
            if degenerate:
                changes["clean_accuracy"] = 0.12
                for row in result.structure:  # a collapsed network: full erank in the plots
                    row["normalized_effective_rank"] = 0.99
            if method == "pgd-adv":
                changes["warnings"] = [f"{WARNING} ({model}, seed {seed})"]
            store.record(dataclasses.replace(result, **changes))
            flags.append({"run_id": result.run_id, "degenerate": degenerate})
    build_report(root / "results.sqlite", root / "out")
    return root, (root / "out" / "report.md").read_text(), pd.DataFrame(flags)


def test_claims_use_the_strongest_stored_attack(study: tuple[Path, str, pd.DataFrame]) -> None:
    root, _, _ = study
    claims = pd.read_csv(root / "out" / "claims.csv")
    robustness = claims[claims["claim"].isin(["C2", "C3", "C4"]) & (claims["role"] == "primary")]
    assert len(robustness) > 0
    assert all("autoattack" in m for m in robustness["metric"]), robustness["metric"].tolist()
    # C2's effect is AutoAttack's area: ℓ1+nuclear − natural, the same for every seed
    c2 = robustness[robustness["claim"] == "C2"]
    assert len(c2) == len(LAYERS)
    want = _area(AA_FR["l1+nuclear"]) - _area(AA_FR["natural"])
    assert c2["effect"].to_numpy() == pytest.approx(want, abs=1e-9)
    c4 = robustness[(robustness["claim"] == "C4") & ~robustness["metric"].str.contains("matched")]
    assert set(c4["effect"].round(9)) == {round(_area(AA_FR["l1+nuclear"]) - _area(AA_FR[a]), 9)
                                          for a in ("fgsm-adv", "pgd-adv")}


def _spearman_row(md: str, metric: str) -> tuple[float, int]:
    name = re.escape(metric.replace("_", "\\_"))  # Markdown escapes the underscores
    found = re.search(rf"^\| {name} \| mean normalized erank \| (\S+) \| \S+ \| (\d+) \|$",
                      md, re.M)
    assert found, f"no Spearman row for {metric}"
    return float(found.group(1)), int(found.group(2))


def test_spearman_rho_leaves_degenerate_runs_out(study: tuple[Path, str, pd.DataFrame]) -> None:
    root, md, flags = study
    assert "**6 degenerate run(s)**" in md
    rho, n = _spearman_row(md, "fr_auc_autoattack_inf")
    healthy = set(flags.loc[~flags["degenerate"], "run_id"])
    assert n == len(healthy) == len(flags) - 6
    # ρ recomputed from the stored numbers: final-epoch mean normalized erank vs AutoAttack's
    # fooling ratio, over the healthy runs only; with the degenerate runs it would differ
    with ResultsStore(root / "results.sqlite", readonly=True) as store:
        structure, curves = store.structure(), store.robustness()
    last = structure[structure["epoch"] == structure.groupby("run_id")["epoch"].transform("max")]
    erank = last.groupby("run_id")["normalized_effective_rank"].mean()
    top = curves[(curves["attack"] == "autoattack") & (curves["epsilon"] == 0.1)]
    fr = top.set_index("run_id")["fooling_ratio"]  # its area is linear in it: the same ranks
    ids = sorted(healthy)
    want = stats.spearmanr(erank[ids], fr[ids]).statistic
    every = stats.spearmanr(erank[flags["run_id"]], fr[flags["run_id"]]).statistic
    assert abs(want - every) > 0.05  # the test can tell the two apart
    assert rho == pytest.approx(want, abs=5e-3)  # the report prints ρ to 3 digits


def test_report_lists_masking_warnings_when_the_checks_ran(
        study: tuple[Path, str, pd.DataFrame]) -> None:
    _, md, _ = study
    section = md.split("\n## Evaluation", 1)[1].split("\n## ", 1)[0]
    assert "Warnings of the gradient-masking checks" in section
    listed = [line for line in section.splitlines() if WARNING in line]
    assert len(listed) == len(LAYERS) * len(SEEDS)  # one per pgd-adv run, none lost
    for model in LAYERS:
        for seed in SEEDS:
            assert any(f"({model}, pgd-adv, seed {seed}): {WARNING} ({model}, seed {seed})" in line
                       for line in listed), (model, seed)


def _tiny_effects(c2_effect: float, c1_effect: float) -> pd.DataFrame:
    """Natural, PGD-adv and ℓ1+nuclear runs of one model over 4 seeds, with the given C2
    (robustness) and C1 (structure) effects and a small seed noise."""
    rows = []
    for seed in range(4):
        noise = 0.0004 * (seed - 1.5)
        for method, fr, erank in (("natural", 0.60, 0.50), ("pgd-adv", 0.20, 0.50 + c1_effect),
                                  ("l1+nuclear", 0.60 + c2_effect, 0.50)):
            rows.append({"dataset": "d", "model": "mlp", "method": method, "seed": seed,
                         "fr_auc_pgd_inf": fr + noise * (method != "natural"),
                         "ra_auc_pgd_inf": 0.9 - fr - noise * (method != "natural"),
                         "erank": erank + noise * (method == "pgd-adv"), "esparsity": 0.5,
                         "n_points": 1000})  # the binomial SE behind the robustness margin
    return pd.DataFrame(rows)


def test_negligible_margins_go_through_evaluate_claims() -> None:
    """An effect whose whole interval contains 0 and lies inside the margin (default margins:
    2 binomial standard errors for robustness, 2 % of natural's value for structure) is
    negligible; the same runs with effects beyond the margin hold; a CI that excludes 0 is never
    negligible, however small the effect."""
    def table(c2: float, c1: float) -> pd.DataFrame:
        return evaluate_claims(_tiny_effects(c2, c1), metrics=robustness_metrics("pgd")) \
            .set_index(["claim", "metric"])

    small = table(0.0, 0.0)
    # without per-point data the robustness CI carries unpaired binomial noise (√2 · 2 SE wide at
    # least), wider than the 2-SE margin: inconclusive, never negligible by construction
    assert small.loc[("C2", "ra_auc_pgd_inf"), "verdict"] == "inconclusive"
    assert small.loc["C1"].loc["mean normalized effective rank of W", "verdict"] == NEGLIGIBLE
    large = table(-0.2, -0.05)
    assert large.loc[("C2", "ra_auc_pgd_inf"), "verdict"] == HOLDS
    assert large.loc["C1"].loc["mean normalized effective rank of W", "verdict"] == HOLDS
    tiny = table(0.0, -0.004)  # inside the ±0.01 structure margin, but the CI excludes 0
    row = tiny.loc["C1"].loc["mean normalized effective rank of W"]
    assert row["verdict"] == HOLDS and bool(row["small"])
    assert np.isfinite(large["effect"]).all()


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rankrobust", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_rankrobust_debug_shows_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    args = ["report", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "out")]
    plain = _cli(args, RANKROBUST_DEBUG="0")
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    debug = _cli(args, RANKROBUST_DEBUG="1")
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert "rankrobust.errors.DataError: no results database at" in debug.stderr
    assert not (tmp_path / "out").exists()


def test_sweep_exits_1_when_a_run_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = {"name": "exit", "dataset": "synthetic", "model": "mlp",
            "model_options": {"hidden": [8]}, "train": {"epochs": 1, "batch_size": 128},
            "evaluation": {"n": 16}}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base))
    bad = tmp_path / "bad.yaml"  # valid config, a run that diverges: it fails, the sweep goes on
    bad.write_text(yaml.safe_dump({**base, "variants": [
        {"name": "ok"}, {"name": "broken", "train": {"epochs": 2, "lr": 1e30}}]}))
    assert main(["sweep", str(good), "--out", str(tmp_path / "good"), "--no-progress"]) == 0
    assert main(["sweep", str(bad), "--out", str(tmp_path / "bad"), "--no-progress"]) == 1
    assert "1 failed" in capsys.readouterr().out
    with ResultsStore(tmp_path / "bad" / "results.sqlite", readonly=True) as store:
        runs = store.runs()
    assert sorted(runs["status"]) == ["complete", "failed"]
    assert runs.loc[runs["status"] == "failed", "variant"].tolist() == ["broken"]
