"""build_report on a tiny hand-made results database: files, references, claims, rebuilds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rankrobust.errors import DataError
from rankrobust.experiments.config import run_config_from_dict
from rankrobust.experiments.grid import run_id
from rankrobust.experiments.run import RunResult
from rankrobust.experiments.store import ResultsStore
from rankrobust.report.build import build_report

# mlp 150-100 and lenet5-wide: a capacity-matched pair on mnist5k (133,860 and 137,914 parameters)
LAYERS = {"mlp": [("net.0", 20, 256), ("net.2", 4, 20)],
          "lenet5-wide": [("conv1", 6, 25), ("conv2", 16, 150), ("fc", 4, 84)]}
EPS = {"inf": [0.0, 0.05, 0.1, 0.2], "2": [0.0, 0.5, 1.0, 2.0]}
POINTS = 20_000  # test points per attack: point noise small beside the fixture's effects
# (method, λ1, λ*) → a robustness offset; λ grids of two points per regularizer.
METHODS = [("natural", 0, 0), ("fgsm-adv", 0, 0), ("pgd-adv", 0, 0), ("l1", 1e-5, 0), ("l1", 1e-3, 0),
           ("nuclear", 0, 1e-4), ("nuclear", 0, 1e-2), ("l1+nuclear", 1e-5, 1e-4),
           ("l1+nuclear", 1e-3, 1e-2)]


def _config(model: str, method: str, l1: float, nuc: float, seed: int):  # noqa: ANN202
    train: dict = {"epochs": 2, "seed": seed}
    params = {k: v for k, v in (("lambda_l1", l1), ("lambda_nuclear", nuc)) if v}
    if method in ("fgsm-adv", "pgd-adv"):
        params = {"eps": 0.1}
    train["method"] = {"name": method, **params}
    evaluation = {"n": POINTS, "attacks": [{"attack": a, "norm": n, "epsilons": EPS[n],
                                        "options": {"steps": 7} if a == "pgd" else {}}
                                       for a, n in (("fgsm", "inf"), ("fgsm", "2"), ("pgd", "inf"))]}
    return run_config_from_dict({"dataset": "mnist5k", "model": model, "train": train,
                                 "evaluation": evaluation})


def _result(config, model: str, method: str, l1: float, nuc: float, seed: int) -> RunResult:  # noqa: ANN001
    """Synthetic numbers built so that every claim holds (clear effects, small seed noise)."""
    rng = np.random.default_rng([seed, len(method), int(l1 * 1e6), int(nuc * 1e6)])
    strong = l1 >= 1e-3 or nuc >= 1e-2
    rank_drop = {"fgsm-adv": 0.1, "pgd-adv": 0.2}.get(method, 0.05 if method != "natural" else 0.0)
    robust = {"natural": 0.0, "fgsm-adv": 0.5, "pgd-adv": 0.6, "l1": 0.1, "nuclear": 0.15,
              "l1+nuclear": 0.25}[method] * (1.6 if model == "lenet5-wide" else 1.0)
    structure = []
    for epoch in range(3):
        for layer, m, n in LAYERS[model]:
            ner = 0.8 - rank_drop * epoch / 2 + rng.normal(0, 0.005)
            nes = 0.7 - rank_drop * epoch / 2 + rng.normal(0, 0.005)
            structure.append({"epoch": epoch, "layer": layer, "kind": "linear", "shape": f"{m}x{n}",
                              "rows": m, "cols": n, "effective_rank": ner * min(m, n),
                              "effective_sparsity": nes * m * n, "normalized_effective_rank": ner,
                              "normalized_effective_sparsity": nes})
    robustness = []
    for attack, norm in (("fgsm", "inf"), ("fgsm", "2"), ("pgd", "inf")):
        for eps in EPS[norm]:
            fr = min(1.0, eps / max(EPS[norm]) * (1 - 0.6 * robust) + rng.normal(0, 0.005)) if eps else 0.0
            robustness.append({"attack": attack, "norm": norm, "epsilon": eps, "fooling_ratio": fr,
                               "fooling_ratio_correct": fr, "robust_accuracy": 0.9 * (1 - fr),
                               "clean_accuracy": 0.9, "n": POINTS, "options": "{}"})
    acc = 0.9 - (0.05 if strong else 0.005) + rng.normal(0, 0.002)
    spectra = {layer: sorted(rng.uniform(0, 1, min(m, n)) ** (1 + 3 * rank_drop), reverse=True)
               for layer, m, n in LAYERS[model]}
    return RunResult(
        run_id=run_id(config), status="complete", clean_accuracy=acc, train_seconds=1.0 + seed,
        eval_seconds=0.5, history=[{"epoch": e, "train_loss": 1.0 / e, "test_acc": acc} for e in (1, 2)],
        structure=structure, robustness=robustness, scalars={"rho_adv": 0.1 + 0.1 * robust},
        spectra={k: [float(v) for v in s] for k, s in spectra.items()},
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00", host="testhost",
    )


def make_db(path: Path, seeds: tuple[int, ...] = (0, 1, 2), failed: bool = True) -> Path:
    """A results database with mlp and lenet5-wide × every method × λ grid × seeds (+ one
    failure)."""
    configs = [(_config(mo, me, l1, nuc, s), mo, me, l1, nuc, s)
               for mo in LAYERS for me, l1, nuc in METHODS for s in seeds]
    with ResultsStore(path) as store:
        store.register([c[0] for c in configs])
        for cfg, *rest in configs:
            store.record(_result(cfg, *rest))  # type: ignore[arg-type]
        if failed:
            bad = _config("mlp", "natural", 0, 0, 99)
            store.register([bad])
            store.record(RunResult(run_id=run_id(bad), status="failed", error="RuntimeError: boom"))
    return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    db = make_db(root / "results.db")
    path = build_report(db, root / "out")
    assert path == root / "out" / "report.html"
    return root / "out"


def test_every_figure_exists_and_is_referenced_in_html_and_md(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    pngs = sorted(p.name for p in (report_dir / "figures").glob("*.png"))
    assert set(pngs) == {"lambda_selection.png", "structure_by_layer.png", "structure_epochs.png",
                         "fooling_ratio.png", "spectra.png", "robustness_vs_rank.png",
                         "training_curves.png", "frontier.png"}
    for name in pngs:
        assert (report_dir / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="figures/{name}"' in html
        assert f"](figures/{name})" in md
    referenced = set(re.findall(r'src="([^"]+)"', html)) | set(re.findall(r"\]\(([^)]+\.png)\)", md))
    assert all((report_dir / ref).is_file() for ref in referenced)
    assert "No data for this figure" not in md


def test_claims_table_holds_on_clear_synthetic_effects(report_dir: Path) -> None:
    claims = pd.read_csv(report_dir / "claims.csv")
    assert set(claims["claim"]) == {"C1", "C2", "C3", "C4"}
    primary = claims[claims["role"] == "primary"]
    assert (primary["verdict"] == "holds").all(), primary[["claim", "scope", "comparison", "verdict"]]
    assert (claims["n"] == 3).all()
    md = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    assert 'id="claims-c2"' in html and "| C2 |" in md
    assert "within 2 points of natural training" in md  # the λ rule is stated
    assert "RuntimeError: boom" in md  # failed runs are listed in the run table


def test_lambda_rule_picks_largest_within_two_points(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    section = md.split("## Choosing λ")[1].split("##")[0]
    # The strong λ's cost 5 points of accuracy, so the weak ones are chosen everywhere.
    chosen = [line for line in section.splitlines() if line.startswith("|") and "| yes | no |" in line]
    assert len(chosen) == 6
    settings = [line.split("|")[4] for line in chosen]  # | dataset | model | method | setting |
    assert all("lambda" in s and "0.01" not in s and "0.001" not in s for s in settings), settings


def test_report_is_rebuildable_and_deterministic(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.db", seeds=(0, 1), failed=False)
    a = build_report(db, tmp_path / "a")
    b = build_report(db, tmp_path / "b")
    strip = re.compile(r"report built [^.]*\.")
    assert strip.sub("", a.read_text()) == strip.sub("", b.read_text())
    assert (tmp_path / "a" / "claims.csv").read_text() == (tmp_path / "b" / "claims.csv").read_text()


def test_one_seed_is_inconclusive_and_missing_db_is_a_data_error(tmp_path: Path) -> None:
    db = make_db(tmp_path / "one.db", seeds=(0,), failed=False)
    build_report(db, tmp_path / "out")
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert (claims["verdict"] == "inconclusive").all()
    with pytest.raises(DataError, match="no results database"):
        build_report(tmp_path / "missing.db", tmp_path / "x")


def test_cli_report_prints_the_path_and_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rankrobust.cli.main import main

    db = make_db(tmp_path / "c.db", seeds=(0,), failed=False)
    assert main(["report", str(db), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'r' / 'report.html'}"
    assert main(["report", str(tmp_path / "none.db"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rankrobust: error: no results database") and "\n" not in err


def test_figures_without_data_are_skipped_and_said_so(tmp_path: Path) -> None:
    from rankrobust.report import figures, figures_robustness
    from rankrobust.report.build import build_document
    from rankrobust.report.markdown import render_markdown
    from rankrobust.report.tables import StudyTables

    empty = pd.DataFrame(columns=["run_id", "model", "method", "seed", "epoch", "layer", "attack",
                                  "norm", "epsilon", "fooling_ratio", "singular_value", "index"])
    for plot in (figures.plot_structure_by_layer, figures.plot_structure_epochs,
                 figures_robustness.plot_fooling_curves, figures.plot_spectra,
                 figures.plot_training_curves):
        assert plot(empty, tmp_path / "x.png") is None
    doc, claims = build_document(StudyTables(), tmp_path / "figs")
    assert claims.empty and not doc.figures()
    assert not list(tmp_path.glob("figs/*.png"))
    assert "No data for this figure" in render_markdown(doc)


def test_training_curves_figure_draws_every_method_per_model(tmp_path: Path) -> None:
    """One curve per method and model over the epochs (mean over seeds); one epoch: no figure."""
    from rankrobust.report import figures

    rows = [{"run_id": f"{m}-{model}-{seed}", "model": model, "method": m, "seed": seed,
             "epoch": e, "train_loss": 1.0 / e + seed * 0.01, "test_acc": 0.5 + 0.1 * e}
            for m in ("natural", "pgd-adv") for model in ("mlp", "lenet5")
            for seed in (0, 1) for e in (1, 2, 3)]
    frame = pd.DataFrame(rows)
    out = figures.plot_training_curves(frame, tmp_path / "training_curves.png")
    assert out is not None and out.stat().st_size > 1000
    assert figures.plot_training_curves(frame[frame["epoch"] == 1], tmp_path / "one.png") is None


def test_code_spans_and_trusted_cells_survive_pandas_string_columns(report_dir: Path) -> None:
    """Our own markup in table cells (run ids, commits, the headline's cells) is rendered, never
    escaped as untrusted text: pandas ≥ 3 would store those str cells in its string dtype and drop
    their Markup type (report/document.markup_frame)."""
    md = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    assert "\\`" not in md  # an escaped backtick: a code span shown as text
    ids = re.findall(r"^\| `([0-9a-f]{16})` \|", md, flags=re.M)
    assert len(ids) >= 10  # the runs table's first column, as code spans
    assert f"<code>{ids[0]}</code>" in html
    assert "\\\\" not in md  # nothing escaped twice


def test_provenance_says_where_the_hours_go(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    assert "Where the hours go" in md
    section = md.split("Where the hours go")[0].rsplit("| model | method | runs |", 1)[1]
    assert "| all |" in section and "| mlp | natural |" in section
