"""What training left for the report: the selected epoch (``best_epoch``: the weights a run kept
and was evaluated with, where structure is read), the validation curves, collapse."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rankrobust.experiments.config import run_config_from_dict
from rankrobust.experiments.run import execute_run
from rankrobust.experiments.store import ResultsStore
from rankrobust.report.context import make_context
from rankrobust.report.epochs import SELECTED, at_selected_epoch, mark_selected
from rankrobust.report.scoring import score_claims
from rankrobust.report.summary import run_summary
from rankrobust.report.tables import load_tables
from rankrobust.training import selection as selection_module
from test_report_build import _config, _result

# a tiny run that selects on validation accuracy; the scripted accuracies make epoch 2 the best
RUN = {"dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
       "train": {"epochs": 4, "batch_size": 64, "lr": 0.05, "validation_size": 200,
                 "select_epoch": "val_acc", "schedule": "constant"},
       "evaluation": {"n": 32, "attacks": [], "deepfool": False, "spectra": True}}
SCRIPTED = (0.5, 0.9, 0.6, 0.4)


@pytest.fixture
def scripted_validation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The selector's validation accuracy per epoch := SCRIPTED (its loss is still measured)."""
    real = selection_module.evaluate
    values = iter(SCRIPTED)

    def scripted(*args: Any, **kwargs: Any) -> tuple[float, float]:
        loss, _ = real(*args, **kwargs)
        return loss, next(values)

    monkeypatch.setattr(selection_module, "evaluate", scripted)
    yield


def test_stored_structure_at_best_epoch_is_the_evaluated_weights(scripted_validation: None) -> None:
    """The structure rows of epoch ``best_epoch`` describe the restored weights that the
    evaluation saw (its spectra: σ₁ and Σσ per layer); the last epoch's rows do not."""
    result = execute_run(run_config_from_dict(copy.deepcopy(RUN)))
    assert result.status == "complete", result.traceback
    assert result.scalars["best_epoch"] == 2.0
    rows = {(r["epoch"], r["layer"]): r for r in result.structure}
    assert {e for e, _ in rows} == {0, 1, 2, 3, 4}
    for layer, sigma in result.spectra.items():  # singular values of the evaluated weights
        best, last = rows[(2, layer)], rows[(4, layer)]
        assert best["spectral_norm"] == pytest.approx(sigma[0], rel=1e-5)
        assert best["nuclear_norm"] == pytest.approx(float(np.sum(sigma)), rel=1e-5)
        assert last["nuclear_norm"] != pytest.approx(float(np.sum(sigma)), rel=1e-3)


def test_selected_rows_fall_back_to_the_last_epoch() -> None:
    structure = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 3 + ["c"] * 2,
                              "epoch": [0, 1, 2, 0, 1, 2, 0, 1], "layer": "w",
                              "normalized_effective_rank": range(8)})
    scalars = pd.DataFrame({"run_id": ["a", "c"], "name": "best_epoch", "value": [1.0, 5.0]})
    picked = at_selected_epoch(structure, scalars).set_index("run_id")["epoch"].to_dict()
    # a: its best epoch; b: no best_epoch stored (an older database); c: no rows at epoch 5
    assert picked == {"a": 1, "b": 2, "c": 1}


def _db(path: Path) -> Path:
    """mlp natural and PGD-adv, 3 seeds; PGD-adv kept epoch 1, whose erank (0.3) differs from its
    last epoch's (0.9)."""
    with ResultsStore(path) as store:
        for method in ("natural", "pgd-adv"):
            for seed in range(3):
                config = _config("mlp", method, 0, 0, seed)
                store.register([config])
                result = _result(config, "mlp", method, 0, 0, seed)
                if method == "pgd-adv":
                    for row in result.structure:
                        row["normalized_effective_rank"] = {0: 0.8, 1: 0.3, 2: 0.9}[row["epoch"]]
                    result.scalars["best_epoch"] = 1.0
                else:
                    result.scalars["best_epoch"] = 2.0
                store.record(result)
    return path


def test_claims_and_figures_read_structure_at_the_selected_epoch(tmp_path: Path) -> None:
    tables = load_tables(_db(tmp_path / "r.sqlite"))
    summary = run_summary(tables.completed()).set_index("method")
    assert summary.loc["pgd-adv", "erank"].tolist() == pytest.approx([0.3] * 3)
    natural = tables.structure.merge(tables.runs[["run_id", "method"]])
    natural = natural[(natural["method"] == "natural") & (natural["epoch"] == 2)]
    c1 = score_claims(tables).rows
    row = c1[(c1["claim"] == "C1") & (c1["metric"] == "mean normalized effective rank of W")
             & c1["comparison"].str.startswith("PGD-adv")].iloc[0]
    assert row["effect"] == pytest.approx(0.3 - natural["normalized_effective_rank"].mean())
    ctx = make_context(tables, tmp_path / "figures", resamples=200)
    kept = ctx.final.merge(tables.runs[["run_id", "method"]])
    assert set(kept.loc[kept["method"] == "pgd-adv", "epoch"]) == {1}  # the per-layer figure
    assert set(kept.loc[kept["method"] == "natural", "epoch"]) == {2}


def test_training_curves_mark_the_selected_epoch_of_selecting_runs_only() -> None:
    epochs = pd.DataFrame({"run_id": ["a", "a", "a", "b", "b", "b"], "epoch": [1, 2, 3] * 2,
                           "val_acc": [0.5, 0.9, 0.6, 0.5, 0.6, 0.7]})
    runs = pd.DataFrame({"run_id": ["a", "b"],
                         "config": [{"train": {"select_epoch": "val_acc"}}, {"train": {}}]})
    scalars = pd.DataFrame({"run_id": ["a", "b"], "name": "best_epoch", "value": [2.0, 3.0]})
    marked = mark_selected(epochs, runs, scalars)
    assert marked[SELECTED].tolist() == [False, True, False, False, False, False]


def test_the_frontier_draws_every_lambda_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One line per method through all of its settings (paper-v2's paths: ℓ1+nuclear and weight
    decay 5 λ, ℓ1 and nuclear 3), every run a dot; a model without an area gets no panel."""
    from rankrobust.report import figures_robustness as rfig

    settings = {"natural": 1, "l1+nuclear": 5, "weight-decay": 5, "l1": 3, "nuclear": 3}
    paths = pd.DataFrame([{"dataset": "d", "model": "mlp", "method": m, "setting": f"λ{k}",
                           "clean_accuracy": 0.9 - 0.01 * k, "area": 0.2 + 0.02 * k}
                          for m, n in settings.items() for k in range(n)])
    points = paths.loc[paths.index.repeat(2)].assign(
        run_id=[f"r{i}" for i in range(2 * len(paths))], seed=0, degenerate=False,
        attack="autoattack", eps_train=0.3)
    no_area = points.iloc[:2].assign(model="lenet5-wide", area=np.nan, eps_train=np.nan)
    drawn: list[Any] = []
    monkeypatch.setattr(rfig, "_save", lambda fig, path: drawn.append(fig) or path)
    assert rfig.plot_frontier(pd.concat([points, no_area]), paths, tmp_path / "f.png") is not None
    (ax,) = [a for a in drawn[0].axes if a.has_data()]
    lines = {line.get_label(): len(line.get_xdata()) for line in ax.get_lines()}
    assert lines == {"natural": 1, "ℓ1+nuclear": 5, "weight decay": 5, "ℓ1": 3, "nuclear": 3}
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(points)


def test_a_collapsed_run_is_flagged_counted_and_left_out_of_the_report(tmp_path: Path) -> None:
    from rankrobust.report.build import build_report

    db = _db(tmp_path / "c.sqlite")
    with ResultsStore(db) as store:  # PGD-adv seed 2 collapsed
        collapsed = _config("mlp", "pgd-adv", 0, 0, 2)
        result = _result(collapsed, "mlp", "pgd-adv", 0, 0, 2)
        result.scalars.update(best_epoch=1.0, collapsed=1.0)
        store.record(result)
    build_report(db, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "1 run(s) flagged collapsed" in md.split("## Summary")[0]  # the intro counts it
    (line,) = [x for x in md.splitlines() if result.run_id in x and "| mnist5k |" in x]
    assert line.rstrip(" |").endswith("collapsed")  # the run table's flag
    headline = md.split("## Summary")[1].split("## Claims in detail")[0]
    assert "| PGD-adv |" in headline and headline.split("| PGD-adv |")[1].split("\n")[0] \
        .rstrip(" |").endswith("| 2")  # n = 2 seeds: the collapsed one left out
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    c1 = claims[claims["claim"] == "C1"]
    assert (c1["n"] == 2).all() and c1["note"].str.contains("1 collapsed run(s) left out", regex=False).all()


def test_the_run_table_shows_parameters_and_the_kept_epoch() -> None:
    from rankrobust.report.runs import run_table
    from rankrobust.report.tables import StudyTables

    runs = pd.DataFrame({"run_id": ["a", "b"], "dataset": "mnist5k", "model": ["mlp", "lenet5-wide"],
                         "method": "pgd-adv", "seed": 0, "clean_accuracy": 0.9,
                         "config": [{"model_options": {"hidden": [150, 100]},
                                     "train": {"select_epoch": "val_robust_acc"}}, {"train": {}}]})
    scalars = pd.DataFrame({"run_id": ["a", "b"], "name": "best_epoch", "value": [7.0, 15.0]})
    table = run_table(StudyTables(runs=runs, scalars=scalars)).set_index("model")
    assert table["parameters"].to_dict() == {"mlp": "133,860", "lenet5-wide": "137,914"}
    assert table["kept epoch"].to_dict() == {"mlp": "7", "lenet5-wide": ""}  # b keeps its last
