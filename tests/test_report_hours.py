"""Where the hours go (report/hours.py): per (model, method) worker time split, on made-up tables."""

from __future__ import annotations

import pandas as pd
import pytest

from rankrobust.report.document import Document, Table, plain
from rankrobust.report.hours import hours_table, run_times
from rankrobust.report.markdown import render_markdown
from rankrobust.report.tables import StudyTables


def _tables() -> StudyTables:
    runs = pd.DataFrame({
        "run_id": ["a", "b", "c", "d"],
        "model": ["cnn", "cnn", "cnn", "mlp"],
        "method": ["natural", "natural", "pgd-adv", "natural"],
        "train_seconds": [99.0, 99.0, 700.0, None],  # a, b: the scalars win; c: the fallback
        "eval_seconds": [99.0, 99.0, 200.0, None],   # d: nothing stored, not counted
    })
    scalars = pd.DataFrame(
        [(rid, name, value) for rid, (tr, ev, ck) in
         {"a": (10.0, 20.0, 2.0), "b": (30.0, 40.0, 4.0)}.items()
         for name, value in (("time_train_s", tr), ("time_eval_s", ev), ("time_checks_s", ck))]
        + [("a", "best_epoch", 3.0)], columns=["run_id", "name", "value"])
    return StudyTables(runs=runs, scalars=scalars)


def test_run_times_prefer_the_stored_split_and_fall_back_to_the_runs_table() -> None:
    times = run_times(_tables()).set_index("run_id")
    assert list(times.index) == ["a", "b", "c"]  # d stored no timing
    assert times.loc["a", ["train_s", "eval_s", "checks_s"]].tolist() == [10.0, 20.0, 2.0]
    assert times.loc["c", ["train_s", "eval_s"]].tolist() == [700.0, 200.0]
    assert pd.isna(times.loc["c", "checks_s"])


def test_hours_table_means_totals_shares_and_order() -> None:
    table = hours_table(_tables())
    assert table["method"].tolist() == ["pgd-adv", "natural", ""]  # largest worker time first
    pgd, natural, total = (table.iloc[i] for i in range(3))
    assert (natural["runs"], natural["train s/run"], natural["eval s/run"],
            natural["checks s/run"]) == (2, "20", "30", "3.0")
    assert pgd["checks s/run"] == "–" and pgd["train s/run"] == "700"
    whole = 700 + 200 + 10 + 20 + 2 + 30 + 40 + 4
    assert pgd["worker h"] == f"{900 / 3600:.2f}"
    assert pgd["share"] == f"{100 * 900 / whole:.1f} %"
    assert natural["share"] == f"{100 * 106 / whole:.1f} %"
    assert (total["model"], total["runs"], total["worker h"]) == ("all", 3, f"{whole / 3600:.2f}")
    assert total["train s/run"] == f"{(10 + 30 + 700) / 3:,.0f}"


def test_no_timings_no_table() -> None:
    assert hours_table(StudyTables()).empty
    runs = pd.DataFrame({"run_id": ["a"], "model": ["m"], "method": ["natural"]})
    assert hours_table(StudyTables(runs=runs)).empty


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "**bold** | pipe"])
def test_stored_names_stay_text_in_the_report(name: str) -> None:
    tables = _tables()
    tables.runs.loc[0, "model"] = name
    doc = Document("t", [Table(hours_table(tables), "hours")])
    text = render_markdown(doc)
    assert name not in text  # never as raw markup
    assert plain(name).split("|")[0] in text  # shown as its text, markup characters escaped
