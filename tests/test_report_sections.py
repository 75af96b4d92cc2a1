"""The report's layout and its new figures: the table of sections, the one-screen summary, the
frontier, single-ε attacks as points, what Square broke, fallback and collapsed flags."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from rankrobust.experiments.store import ResultsStore
from rankrobust.report import sections
from rankrobust.report.build import FIGURE_NAMES, build_report
from rankrobust.report.evaluation import autoattack_members, member_sentence
from rankrobust.report.figures_robustness import _points_panel, plot_point_robustness
from rankrobust.report.frontier import area_over, choose_attack, frontier
from rankrobust.report.runs import FALLBACK_MARK, headline, run_table
from rankrobust.report.tables import StudyTables, load_tables
from test_report_build import _config, _result

REPORT = Path(__file__).resolve().parents[1] / "src" / "rankrobust" / "report"
SMALL = [("natural", 0, 0), ("pgd-adv", 0, 0), ("l1+nuclear", 1e-5, 1e-4), ("l1+nuclear", 1e-3, 1e-2)]


def small_db(path: Path, seeds: tuple[int, ...] = (0, 1), square: int = 0) -> Path:
    """mlp × natural, PGD-adv, ℓ1+nuclear (2 λ) × seeds, each with an AutoAttack point at ε 0.1
    whose ``broken_by`` says Square broke ``square`` inputs (natural) or none (the others)."""
    with ResultsStore(path) as store:
        for method, l1, nuc in SMALL:
            for seed in seeds:
                config = _config("mlp", method, l1, nuc, seed)
                store.register([config])
                result = _result(config, "mlp", method, l1, nuc, seed)
                broken = {"clean": 3, "apgd-ce": 20, "apgd-t": 1,
                          "square": square if method == "natural" else 0}
                result.robustness.append({
                    "attack": "autoattack", "norm": "inf", "epsilon": 0.1, "fooling_ratio": 0.3,
                    "robust_accuracy": 0.6, "clean_accuracy": 0.9, "n": 64,
                    "options": "{}", "broken_by": json.dumps(broken)})
                store.record(result)
    return path


# -- the table of sections ----------------------------------------------------------------------
def test_no_report_function_over_80_lines_and_no_file_over_400() -> None:
    long = []
    for path in REPORT.glob("*.py"):
        text = path.read_text()
        assert text.count("\n") <= 400, f"{path.name}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > 80:
                    long.append(f"{path.name}:{node.name} ({size} lines)")
    assert not long, long


def test_figure_names_come_from_the_section_table() -> None:
    assert tuple(s.figure for s in sections.SECTIONS if s.figure) == FIGURE_NAMES
    assert len(set(FIGURE_NAMES)) == len(FIGURE_NAMES)
    assert "frontier.png" in FIGURE_NAMES and "point_robustness.png" in FIGURE_NAMES


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sections")
    return build_report(small_db(root / "r.sqlite", square=2), root / "out").parent


def test_the_summary_comes_first_and_holds_verdicts_frontier_and_accuracy(report: Path) -> None:
    md = (report / "report.md").read_text()
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Summary", "## Claims in detail"]
    summary = md.split("## Summary")[1].split("## Claims in detail")[0]
    assert "| claim | statement |" in summary  # the verdicts
    assert "(figures/frontier.png)" in summary
    assert "| method | mlp clean | mlp AutoAttack ℓ∞ ε 0.1 |" in summary
    assert "| ci_low |" not in summary  # the per-row table comes after


def test_square_wording_follows_the_stored_counts(report: Path) -> None:
    md = (report / "report.md").read_text()
    # natural: 2 seeds × 2 inputs; the other methods: none
    assert "Square, run on the inputs the gradient-based members left unbroken, broke **4**" in md
    assert "(0–4 per method, over 8 runs)" in md
    frame = pd.DataFrame({"dataset": ["d"] * 2, "model": ["m"] * 2, "method": ["natural"] * 2,
                          "norm": ["inf"] * 2, "epsilon": [0.1] * 2, "run_id": ["a", "b"],
                          "broken_by": [{"apgd-ce": 5, "square": 0}] * 2})
    assert "broke none of them in any of the 2 runs" in member_sentence(autoattack_members(frame))


def test_a_new_section_is_one_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appending one Section adds its heading, prose and figure; nothing else is touched."""
    def plot(ctx: sections.Context, path: Path) -> Path:
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [len(ctx.done.runs)] * 2)
        fig.savefig(path)
        return path

    extra = sections.Section("Extra", lambda ctx: [sections.Paragraph("Extra prose.")],
                             "extra.png", plot, "An extra figure.")
    monkeypatch.setattr(sections, "SECTIONS", (*sections.SECTIONS, extra))
    from rankrobust.report import build

    monkeypatch.setattr(build, "SECTIONS", sections.SECTIONS)
    doc, _ = build.build_document(load_tables(small_db(tmp_path / "r.sqlite")), tmp_path / "f")
    md = build.render_markdown(doc)
    assert md.rstrip().endswith("*An extra figure.*") and "## Extra\n\nExtra prose." in md
    assert (tmp_path / "f" / "extra.png").is_file()


# -- frontier -----------------------------------------------------------------------------------
def test_robust_area_is_the_trapezoid_from_clean_accuracy_to_eps_train() -> None:
    # (0, 0.9) → (0.05, 0.6) → (0.1, 0.4): ((0.9+0.6)/2·0.05 + (0.6+0.4)/2·0.05) / 0.1 = 0.625
    assert area_over([0.05, 0.1, 0.2], [0.6, 0.4, 0.1], 0.9, 0.1) == pytest.approx(0.625)
    # a network no attack moves keeps its clean accuracy; a linear fall to 0 halves it
    assert area_over([0.1], [0.8], 0.8, 0.1) == pytest.approx(0.8)
    assert area_over([0.05, 0.1], [0.4, 0.0], 0.8, 0.1) == pytest.approx(0.4)
    assert np.isnan(area_over([0.05], [0.1], 0.9, 0.1))  # the curve stops short of ε_train


def test_frontier_uses_the_strongest_attack_with_a_curve() -> None:
    rows = [("a", "autoattack", 0.1), *[("a", "pgd", e) for e in (0.02, 0.05, 0.1)]]
    curves = pd.DataFrame(rows, columns=["run_id", "attack", "epsilon"]).assign(
        norm="inf", dataset="d", model="m")
    eps = {("d", "m"): 0.1}
    attack, note = choose_attack(curves, eps)
    assert attack == "pgd" and "autoattack" in note  # AutoAttack has one budget only
    grid = curves.iloc[:1].loc[[0] * 4].assign(epsilon=[0.025, 0.05, 0.075, 0.1])
    assert choose_attack(pd.concat([curves, grid]), eps)[0] == "autoattack"
    # a model with no adversarial run yet (no ε_train: a partial study) does not decide it
    other = grid.iloc[:1].assign(run_id="b", model="n", epsilon=0.3)
    assert choose_attack(pd.concat([curves, grid, other]), eps)[0] == "autoattack"
    assert choose_attack(curves[curves["attack"] == "autoattack"], eps)[0] is None


def test_frontier_paths_join_settings_weakest_first() -> None:
    runs = pd.DataFrame([
        {"run_id": f"{lam}-{s}", "dataset": "d", "model": "m", "method": "l1", "seed": s,
         "method_params": json.dumps({"lambda_l1": lam}), "degenerate": lam > 2e-3}
        for lam in (1e-3, 1e-4, 3e-3, 1e-2) for s in (0, 1)])
    values = pd.DataFrame({"run_id": runs["run_id"], "area": 0.5, "clean": 0.9})
    paths = frontier(runs[runs["method_params"] != json.dumps({"lambda_l1": 1e-2})], values)
    # weakest λ first; the degenerate setting (λ 0.003) is left out
    assert list(paths["setting"]) == ["lambda_l1=0.0001", "lambda_l1=0.001"]
    assert paths["seeds"].tolist() == [2, 2]


# -- figures and tables -------------------------------------------------------------------------
def test_a_single_eps_attack_is_drawn_as_a_point_per_method() -> None:
    sub = pd.DataFrame({"method": ["natural", "natural", "pgd-adv", "pgd-adv"],
                        "epsilon": [0.1] * 4, "robust_accuracy": [0.5, 0.52, 0.9, 0.91]})
    ax = Figure().subplots()
    _points_panel(ax, sub, "robust_accuracy")
    assert ax.get_xlim() == pytest.approx((-0.6, 1.6))  # the methods along x, not ε ± 0.004
    assert [t.get_text() for t in ax.get_xticklabels()] == ["natural", "PGD-adv"]


def test_the_headline_table_flags_a_fallback_setting() -> None:
    chosen = pd.DataFrame({"run_id": ["n", "l", "n1"], "dataset": "d", "model": "mlp",
                           "method": ["natural", "lowrank", "natural"], "seed": [0, 0, 1],
                           "clean_accuracy": [0.9, 0.8, 0.9], "method_params": [{}, {}, {}]})
    curves = pd.DataFrame({"run_id": ["n", "l", "n1"], "attack": "pgd", "norm": "inf",
                           "epsilon": 0.1, "robust_accuracy": [0.2, 0.025, 0.2]})
    selection = pd.DataFrame({"dataset": ["d"], "model": ["mlp"], "method": ["lowrank"],
                              "fallback": [True]})
    table = headline(chosen, curves, selection, "pgd", {("d", "mlp"): 0.1}).set_index("method")
    # clean, robust, n (seeds) per method
    assert table.loc["low-rank U·V"].tolist() == [f"80.0 % {FALLBACK_MARK}", f"2.5 % {FALLBACK_MARK}", "1"]
    assert table.loc["natural"].tolist() == ["90.0 %", "20.0 %", "2"]


def test_collapsed_runs_are_flagged_in_the_run_table() -> None:
    runs = pd.DataFrame({"run_id": ["a", "b"], "dataset": "mnist", "model": "mlp",
                         "method": "natural", "seed": [0, 1], "clean_accuracy": [0.95, 0.96]})
    scalars = pd.DataFrame({"run_id": ["a", "b"], "name": "collapsed", "value": [1.0, 0.0]})
    table = run_table(StudyTables(runs=runs, scalars=scalars))
    assert table.set_index("seed")["flag"].to_dict() == {0: "collapsed", 1: ""}


def test_adversarial_runs_that_never_became_robust_are_flagged() -> None:
    """Twice chance (20 % on 10 classes) is the line: c peaks at 19.9 %, b at 20 %, a (natural)
    measured no validation robust accuracy; a collapse (d: above, then at chance) is not this."""
    runs = pd.DataFrame({"run_id": ["a", "b", "c", "d"], "dataset": "mnist", "model": "mlp",
                         "method": ["natural", "pgd-adv", "fgsm-adv", "pgd-adv"],
                         "seed": [0, 1, 2, 3], "clean_accuracy": 0.95})
    epochs = pd.DataFrame({
        "run_id": ["a", "a", "b", "b", "c", "c", "c", "d", "d"], "epoch": [1, 2, 1, 2, 1, 2, 3, 1, 2],
        "val_robust_acc": [np.nan, np.nan, 0.05, 0.2, 0.02, 0.199, 0.01, 0.6, 0.1]})
    scalars = pd.DataFrame({"run_id": ["d"], "name": "collapsed", "value": [1.0]})
    table = run_table(StudyTables(runs=runs, scalars=scalars, epoch_metrics=epochs))
    assert table.set_index("seed")["flag"].to_dict() == {0: "", 1: "", 2: "never robust",
                                                         3: "collapsed"}
    assert not run_table(StudyTables(runs=runs))["flag"].str.contains("never").any()


def test_point_robustness_plot_and_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    points = pd.DataFrame({"run_id": "a", "attack": "autoattack", "norm": "inf",
                           "point": range(6), "eps_min": [0.0, 0.01, 0.05, 0.05, np.inf, np.nan],
                           "model": "mlp", "method": "natural", "dataset": "d", "seed": 0})
    assert plot_point_robustness(points, tmp_path / "p.png") == tmp_path / "p.png"
    assert plot_point_robustness(points.iloc[:0], tmp_path / "q.png") is None
    db = small_db(tmp_path / "r.sqlite", seeds=(0,))
    stored = load_tables(db).runs["run_id"].iloc[0]

    def point_robustness(self: ResultsStore) -> pd.DataFrame:
        return points.drop(columns=["model", "method", "dataset", "seed"]).assign(run_id=stored)

    md_without = _markdown(db, tmp_path / "without")
    monkeypatch.setattr(ResultsStore, "point_robustness", point_robustness, raising=False)
    md_with = _markdown(db, tmp_path / "with")
    assert "point_robustness.png" not in md_without and "(figures/point_robustness.png)" in md_with


def _markdown(db: Path, out: Path) -> str:
    build_report(db, out)
    return (out / "report.md").read_text()


def test_attack_gaps_say_how_far_a_weaker_attack_overstates() -> None:
    from rankrobust.report.evaluation import attack_gaps, gap_sentence

    rows = [("natural", a, eps, ra) for a, eps, ra in (
        ("autoattack", 0.3, 0.10), ("pgd", 0.3, 0.19), ("pgd", 0.1, 0.5), ("fgsm", 0.3, 0.40))]
    rows += [("pgd-adv", "autoattack", 0.3, 0.50), ("pgd-adv", "pgd", 0.3, 0.68)]
    curves = pd.DataFrame([{"dataset": "d", "model": "mlp", "method": m, "attack": a, "norm": "inf",
                            "epsilon": e, "robust_accuracy": r, "run_id": m} for m, a, e, r in rows])
    gaps = attack_gaps(curves)
    assert gaps["overstated (points)"].round(6).tolist() == [9.0, 30.0, 18.0]
    assert list(gaps["attack"]) == ["PGD ℓ∞", "FGSM ℓ∞", "PGD ℓ∞"]
    sentence = gap_sentence(gaps)
    assert "PGD ℓ∞ by +9.0 to +18.0 points (at ε 0.3)" in sentence and "AutoAttack ℓ∞" in sentence
    assert attack_gaps(curves[curves["attack"] == "pgd"]).empty
