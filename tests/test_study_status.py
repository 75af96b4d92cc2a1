"""``rankrobust runs --summary``: a study's runs by status, the share of its estimated work done
(runs weighed by the --max-hours estimate, not counted), wall time and an ETA at that pace."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rankrobust.cli.main import main
from rankrobust.configuration import to_dict
from rankrobust.experiments import study_from_dict
from rankrobust.experiments.estimate import run_work
from rankrobust.experiments.grid import expand, run_id
from rankrobust.experiments.status import study_status

SPEC = {"name": "st", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1}, "evaluation": {"n": 16}, "seeds": [0],
        "variants": [{"name": "a"}, {"name": "b", "train": {"epochs": 4}},
                     {"name": "c", "train": {"epochs": 9}}]}


def frames(statuses: list[str], seconds: list[float | None]) -> tuple[pd.DataFrame, pd.DataFrame]:
    configs = expand(study_from_dict(SPEC))
    runs = pd.DataFrame({"run_id": [run_id(c) for c in configs], "status": statuses,
                         "study": "st", "config": [json.dumps(to_dict(c)) for c in configs]})
    return runs, pd.DataFrame({"seconds": seconds})


def test_work_done_is_weighed_by_each_runs_estimate_and_the_eta_follows() -> None:
    runs, sessions = frames(["complete", "failed", "pending"], [100.0, 20.0, None])
    hours = [run_work(c).hours for c in expand(study_from_dict(SPEC))]
    assert hours[0] < hours[1] < hours[2]
    status = study_status(runs, sessions)
    done = (hours[0] + hours[1]) / sum(hours)
    assert status.work_done == pytest.approx(done)
    assert status.wall_seconds == 120.0 and status.sessions_without_time == 1
    assert status.eta_seconds == pytest.approx(120.0 * (1 - done) / done)
    lines = status.lines()
    assert lines[0] == "study st: 3 runs: 1 pending, 0 running, 1 complete, 1 failed"
    assert lines[1].startswith(f"estimated work done: {100 * done:.1f} %")
    assert "2:00 over 3 sweep session(s) (1 without a recorded time); ETA at this pace" in lines[2]


def test_nothing_done_has_no_eta_and_a_config_of_another_version_is_named() -> None:
    runs, sessions = frames(["pending", "running", "pending"], [])
    runs.loc[2, "config"] = '{"dataset": "no-such-dataset"}'
    status = study_status(runs, sessions)
    assert status.work_done == 0 and status.eta_seconds is None
    assert status.unreadable == [runs.loc[2, "run_id"]]
    assert "ETA" not in " ".join(status.lines()) and "left out of the work shares" in status.lines()[-1]


def test_runs_summary_on_a_finished_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(json.dumps({**SPEC, "variants": [{"name": "a"}], "seeds": [0, 1]}))
    out = tmp_path / "out"
    assert main(["sweep", str(study), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    db = str(out / "results.sqlite")
    assert main(["runs", "--db", db, "--summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "study st: 2 runs: 0 pending, 0 running, 2 complete, 0 failed"
    assert lines[1].startswith("estimated work done: 100.0 %")
    assert lines[2].endswith("over 1 sweep session(s); nothing left to run")
    assert main(["runs", "--db", db, "--summary", "--format", "json"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rankrobust: error: --summary takes no --status, --all-columns or --format")
