"""`report` on hostile or careless databases: stored text stays inert in report.md, stored JSON is
checked against its schema once (one error line, exit 2), sums of valid values are checked, and
a killed session reads as killed, not `nan / nan`."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankrobust.cli.main import main
from rankrobust.errors import DataError
from rankrobust.experiments.provenance import finish_record, session_record
from rankrobust.experiments.store import SESSION_PREFIX, ResultsStore
from rankrobust.report.build import build_report
from rankrobust.report.document import code, plain
from rankrobust.report.evaluation import attack_settings, sanity_statement, sanity_warnings
from rankrobust.report.provenance import provenance
from rankrobust.report.runs import run_table
from rankrobust.report.stored import CONFIG, RUN_FIELDS, SchemaError, parse, validate_runs
from rankrobust.report.tables import StudyTables, load_tables
from test_report_sections import small_db

HOSTILE = ("x`<script>alert(1)</script>`` | <img src=x onerror=alert(1)>\n# owned\n"
           "| a | b |\n```\n[l](javascript:alert(1)) **b** _i_ &lt; \\ $\\bad{$ 1. ~~s~~")
RAW = ("<script", "<img", "](javascript", "&lt;")
RUN_TEXT = ("error", "study", "variant", "label", "host", "checkpoint", "python_version",
            "torch_version", "numpy_version", "rankrobust_version", "traceback", "registered_at")


def _code_spans_removed(line: str) -> str:
    """``line`` less its CommonMark code spans (a run of n backticks to the next run of n)."""
    return re.sub(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", "", line)


def assert_inert(md: str, section_titles: set[str]) -> None:
    """No hostile construct is live in ``md``: every raw marker is in a code span or escaped,
    every heading is one of ours, every table row has its header's number of cells."""
    header_cells = 0
    for line in md.splitlines():
        if line.startswith("#"):
            assert line.lstrip("#").strip() in section_titles, line
        bare = _code_spans_removed(re.sub(r"\\.", "", line))
        for marker in RAW:
            assert marker not in bare, (marker, line)
        assert "`" not in bare.replace("``", ""), line  # no fence or span left open
        if line.startswith("|"):
            cells = len(re.findall(r"(?<!\\)\|", re.sub(r"\\\\", "", line)))
            if not re.match(r"\| (---:?|---) \|", line):
                header_cells = cells if header_cells == 0 else header_cells
                assert cells == header_cells, line
        else:
            header_cells = 0


def _hostile_db(path: Path) -> Path:
    small_db(path, seeds=(0,))
    with ResultsStore(path) as store:
        store.save_session(f"{SESSION_PREFIX}a", finish_record(
            {**session_record(HOSTILE, HOSTILE, 2), "host": HOSTILE, "git_commit": HOSTILE,
             "versions": {HOSTILE: HOSTILE}}, 5.0, 1, 0))
    con = sqlite3.connect(path)
    with con:
        con.execute(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in RUN_TEXT)}, "
                    "warnings = ?, dataset = ?, model = ?, "
                    "config = json_set(config, '$.dataset', ?, '$.model', ?)",
                    (*[HOSTILE] * len(RUN_TEXT), json.dumps([HOSTILE]), *[HOSTILE] * 4))
        con.execute("UPDATE robustness SET extra = ?", (json.dumps({HOSTILE: HOSTILE}),))
        con.execute("UPDATE robustness SET attack = ? WHERE attack = 'fgsm'", (HOSTILE,))
        con.execute("UPDATE structure SET layer = ?, kind = ?, shape = ? WHERE layer = 'net.0'",
                    (HOSTILE,) * 3)
        con.execute("UPDATE runs SET config = json_set(config, '$.evaluation.attacks[0].options',"
                    " json(?), '$.evaluation.attacks[0].attack', ?)",
                    (json.dumps({HOSTILE: HOSTILE}), HOSTILE))
    con.close()
    return path


@pytest.mark.filterwarnings("ignore:constrained_layout not applied:UserWarning")  # long names
def test_hostile_text_in_every_stored_field_stays_inert_in_markdown(tmp_path: Path) -> None:
    from rankrobust.report.sections import SECTIONS

    build_report(_hostile_db(tmp_path / "h.sqlite"), tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.count("alert(1)") >= 10  # the text is shown ...
    assert_inert(md, {s.title for s in SECTIONS if s.title}
                 | {"Low-rank weights and adversarial robustness: the reproduction"})
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html  # ... and inert in HTML


@pytest.mark.parametrize("value", [HOSTILE, "`", "``a``", " `x` ", "a\r\nb", "\\", "<", "1) x"])
def test_plain_and_code_round_trip_through_the_html_renderer(value: str) -> None:
    from rankrobust.report.html import inline

    shown = " ".join(value.replace("\r", "\n").split("\n")).replace("  ", " ")
    import html as std

    for markup in (plain(value, block_start=True), code(value)):
        assert std.unescape(re.sub(r"</?(code|strong)>", "", inline(markup))).replace("  ", " ") == shown


# -- values each valid, together broken ----------------------------------------------------------
def _cli(db: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code_ = main(["report", str(db), "--out", str(out)])
    return code_, capsys.readouterr().err


@pytest.mark.parametrize(("sql", "needle"), [
    ("UPDATE runs SET config = json_set(config, '$.evaluation.attacks[0]', 'pgd')",
     "stored config is not valid: evaluation.attacks[0]: expected an object, got \"pgd\""),
    ("UPDATE runs SET warnings = '5'", "stored warnings is not valid: expected a list, got 5"),
    ("UPDATE runs SET warnings = '[1]'", "warnings is not valid: [0]: expected text, got 1"),
    ("UPDATE runs SET config = json_set(config, '$.train.epochs', -1)", "train.epochs"),
    ("UPDATE runs SET config = json_set(config, '$.evaluation.sanity_checks', 3)",
     "evaluation.sanity_checks: expected true or false or a list, got 3"),
    ("UPDATE robustness SET extra = '{\"broken_by\": \"[1]\"}'", "stored broken_by is not valid"),
])
def test_stored_json_that_breaks_its_schema_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str, needle: str
) -> None:
    db = small_db(tmp_path / "r.sqlite", seeds=(0,))
    con = sqlite3.connect(db)
    with con:
        con.execute(sql)
    con.close()
    status, err = _cli(db, tmp_path / "out", capsys)
    assert status == 2 and err.startswith("rankrobust: error: ") and err.count("\n") == 1, err
    assert needle in err and "run " in err
    assert not (tmp_path / "out" / "report.html").exists()


def test_session_times_that_overflow_together_are_not_summed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = small_db(tmp_path / "r.sqlite", seeds=(0,))
    with ResultsStore(db) as store:
        for key in "ab":
            store.save_session(f"{SESSION_PREFIX}{key}", finish_record(
                session_record("rankrobust sweep s.yaml", "local", 2), 1.5e308, 1, 0))
    assert _cli(db, tmp_path / "out", capsys)[0] == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "do not add up to a finite number" in md and "implausible" in md


def test_a_killed_session_reads_as_killed_not_nan(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        store.save_session(f"{SESSION_PREFIX}1", finish_record(
            session_record("rankrobust sweep s.yaml", "local", 2), 60.0, executed=4, failed=1))
        store.save_session(f"{SESSION_PREFIX}2", session_record("rankrobust sweep s.yaml", "local", 2))
    _, table = provenance(load_tables(db))
    cells = table.astype(str).to_numpy().ravel().tolist()
    assert not any("nan" in c for c in cells), cells
    assert table["runs run / failed"].tolist() == ["4 / 1", "– (killed or still running)"]


def test_a_session_field_of_the_wrong_type_is_dropped_with_a_note(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        store.save_session(f"{SESSION_PREFIX}1", {**finish_record(
            session_record("rankrobust sweep s.yaml", "local", 2), 60.0, 4, 1), "runs_executed": "x",
            "versions": ["not", "a", "map"]})
    text, table = provenance(load_tables(db))
    assert "runs\\_executed: expected a whole number ≥ 0, got \"x\" (shown as –)" in text
    assert "versions: expected an object" in text
    assert table["runs run / failed"].tolist() == ["– (killed or still running)"]


# -- fuzz: any stored JSON either passes its schema (and the report reads it) or is refused ------
JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2, 2)
                    | st.text(max_size=4), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["attacks", "n", "options", "epsilons",
                                                       "attack", "norm", "train", "epochs", "lr",
                                                       "sanity_checks", "deepfool", "x"]), inner,
                                      max_size=4), max_leaves=12)
CONFIGS = st.fixed_dictionaries({}, optional={"evaluation": JSON, "train": JSON, "dataset": JSON})


@settings(derandomize=True, max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=CONFIGS, warnings=JSON)
def test_fuzz_stored_json_is_refused_or_read(config: dict[str, Any], warnings: Any) -> None:
    runs = StudyTables().runs.iloc[:0].reindex([0]).assign(
        run_id="r", dataset="d", model="m", method="natural", seed=0, status="complete",
        config=json.dumps(config), method_params="{}", warnings=json.dumps(warnings))
    try:
        checked = validate_runs(runs, "db")
    except DataError as err:
        assert str(err).startswith("db: run r: stored ") and "\n" not in str(err)
        return
    attack_settings(checked)
    sanity_statement(checked)
    sanity_warnings(checked)
    run_table(StudyTables(runs=checked))


def test_schema_accepts_the_committed_databases() -> None:
    root = Path(__file__).resolve().parents[1] / "docs" / "results"
    for db in sorted(root.glob("*/results.sqlite")):
        tables = load_tables(db)
        assert all(isinstance(c, dict) for c in tables.runs["config"]), db
    assert set(RUN_FIELDS) == {"config", "method_params", "warnings"}
    with pytest.raises(SchemaError, match="not JSON"):
        parse("NaN", CONFIG)
