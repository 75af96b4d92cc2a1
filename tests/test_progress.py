"""Progress on every long command (issue 21 §1.6): a bar on a terminal, a line every ~10 s in a
log, nothing with --no-progress. Time is a fake clock here, so what is printed follows from the
calls alone, never from how fast the machine is."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from rankrobust.cli.main import build_parser
from rankrobust.progress import Progress, clock_text
from rankrobust.robustness import fooling_ratio_curve


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_mode_writes_a_line_per_interval_and_a_closing_line() -> None:
    clock, log = FakeClock(), io.StringIO()
    with Progress(4, "evaluate pgd", "inputs", stream=log, clock=clock, heartbeat=False) as bar:
        bar.update(1)
        assert log.getvalue() == ""  # nothing within the first 10 s
        clock.now = 10.0
        bar.update(1)
        clock.now = 15.0
        bar.poll()  # 5 s since the last line: nothing
        clock.now = 20.0
        bar.set_postfix("failed=0")
        bar.poll()  # the heartbeat's call while one long unit runs
        clock.now = 30.0
        bar.update(2)
    assert log.getvalue().splitlines() == [
        "evaluate pgd: 2/4 inputs (50 %), elapsed 0:10, ETA 0:10",
        "evaluate pgd: 2/4 inputs (50 %), elapsed 0:20, ETA 0:20, failed=0",
        "evaluate pgd: 4/4 inputs (100 %), elapsed 0:30, ETA 0:00, failed=0",
        "evaluate pgd: 4/4 inputs (100 %), elapsed 0:30, ETA 0:00, failed=0",  # closing line
    ]


def test_short_work_prints_nothing_unless_forced_and_errors_end_silently() -> None:
    clock = FakeClock()
    quiet = io.StringIO()
    with Progress(2, "x", stream=quiet, clock=clock, heartbeat=False) as bar:
        bar.update(2)
    assert quiet.getvalue() == ""
    forced = io.StringIO()
    with Progress(2, "sweep", "runs", enabled=True, stream=forced, clock=clock, heartbeat=False) as bar:
        bar.update(2)
    assert forced.getvalue() == "sweep: 2/2 runs (100 %), elapsed 0:00, ETA 0:00\n"
    failed = io.StringIO()
    with pytest.raises(RuntimeError), Progress(2, "x", enabled=True, stream=failed, clock=clock,
                                               heartbeat=False) as bar:
        raise RuntimeError("boom")
    assert failed.getvalue() == ""  # the error stays the last line
    off = io.StringIO()
    with Progress(2, "x", enabled=False, stream=off, clock=clock, heartbeat=False) as bar:
        clock.now = 100.0
        bar.update(2)
        bar.write("kept quiet")
    assert off.getvalue() == "kept quiet\n" and bar.mode == "off"


def test_a_terminal_gets_a_bar() -> None:
    term = Terminal()
    with Progress(3, "intervene svd", "rows", stream=term, heartbeat=False) as bar:
        assert bar.mode == "bar"
        bar.update(3)
        bar.set_postfix("done=3")
    assert "intervene svd: 3/3" in term.getvalue() and "ETA" in term.getvalue()


def test_the_heartbeat_thread_stops_with_the_work() -> None:
    with Progress(1, "x", stream=io.StringIO()) as bar:
        assert bar._thread is not None and bar._thread.is_alive()
        thread = bar._thread
    assert not thread.is_alive()


def test_work_without_units_reports_its_time() -> None:
    clock, log = FakeClock(), io.StringIO()
    with Progress(None, "evaluate: gradient-masking checks", stream=log, clock=clock, heartbeat=False) as bar:
        clock.now = 12.0
        bar.poll()
    assert log.getvalue().splitlines() == ["evaluate: gradient-masking checks: running, elapsed 0:12"] * 2


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 65, 3723)] == ["0:00", "1:05", "1:02:03"]


def test_the_curve_reports_every_batch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    x, y = torch.rand(10, 3, 2, 2), torch.randint(0, 3, (10,))
    seen: list[int] = []
    fooling_ratio_curve(model, (x, y), "fgsm", [0.1], batch_size=4, progress=seen.append)
    assert seen == [4, 4, 2]


@pytest.mark.parametrize("command", ["evaluate", "intervene", "sweep", "reproduce"])
def test_long_commands_take_no_progress(command: str) -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices[command].format_help()  # type: ignore[union-attr]
    assert "--no-progress" in help_text


def test_sweep_in_a_log_ends_with_a_summary_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rankrobust.experiments import run_sweep
    from rankrobust.experiments.study_config import study_from_dict

    study = study_from_dict({"name": "tiny", "seeds": [0], "dataset": "synthetic", "model": "mlp",
                             "train": {"epochs": 1, "batch_size": 64}, "evaluation": {"attacks": []},
                             "variants": [{"name": "plain"}]})
    summary = run_sweep(study, out=tmp_path, progress=True)
    assert summary.complete == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("tiny: 1/1 runs (100 %), elapsed ") and "done=1 running=0 failed=0" in err[-1]
    assert json.dumps(err)  # plain text lines, no terminal control codes
    assert not any("\r" in line or "\x1b" in line for line in err)


def test_the_eta_follows_the_work_done_when_units_cost_unequally() -> None:
    """Three runs of estimated work 1, 1 and 8: after the first (10 s for 1 of 10 units of work)
    the ETA is 90 s (the count-based one would say 20 s); after the second, 80 s."""
    clock, log = FakeClock(), io.StringIO()
    with Progress(3, "study", "runs", stream=log, clock=clock, heartbeat=False,
                  total_work=10.0) as bar:
        clock.now = 10.0
        bar.update(1, work=1.0)
        clock.now = 20.0
        bar.update(1, work=1.0)
        clock.now = 100.0
        bar.update(1, work=8.0)
    assert log.getvalue().splitlines() == [
        "study: 1/3 runs (33 %), elapsed 0:10, ETA 1:30",
        "study: 2/3 runs (67 %), elapsed 0:20, ETA 1:20",
        "study: 3/3 runs (100 %), elapsed 1:40, ETA 0:00",
        "study: 3/3 runs (100 %), elapsed 1:40, ETA 0:00",
    ]


def test_a_terminal_bar_shows_the_eta_by_work_in_its_postfix() -> None:
    clock, term = FakeClock(), Terminal()
    with Progress(3, "study", "runs", stream=term, clock=clock, total_work=10.0) as bar:
        clock.now = 10.0
        bar.update(1, work=1.0)
        bar.set_postfix("done=1 running=2 failed=0")
        shown = str(bar._bar)
    assert "ETA 1:30, done=1 running=2 failed=0" in shown and "ETA 00:" not in shown


def test_the_sweep_weighs_its_runs_by_their_estimated_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep hands its bar each run's estimated hours (rankrobust.experiments.estimate), so
    a cheap and a costly run move the ETA by their cost, not by one each."""
    from rankrobust.experiments import run_sweep, study_from_dict
    from rankrobust.experiments import sweep as sweep_module
    from rankrobust.experiments.estimate import run_work
    from rankrobust.experiments.grid import expand

    seen: dict[str, float] = {"total": 0.0, "done": 0.0}

    class Spy(Progress):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            seen["total"] = float(self.total_work or 0.0)

        def update(self, n: int = 1, work: float | None = None) -> None:
            seen["done"] += float(work or 0.0)
            super().update(n, work)

    monkeypatch.setattr(sweep_module, "Progress", Spy)
    study = study_from_dict({
        "name": "w", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1}, "evaluation": {"n": 16}, "seeds": [0],
        "variants": [{"name": "short"}, {"name": "long", "train": {"epochs": 3}}]})
    hours = [run_work(c).hours for c in expand(study)]
    run_sweep(study, out=tmp_path, progress=False)
    assert hours[1] > 2 * hours[0] > 0
    assert seen["total"] == pytest.approx(sum(hours)) == pytest.approx(seen["done"])


@pytest.mark.parametrize("total_work", [float("inf"), float("nan"), 0.0, -1.0])
def test_an_unusable_total_work_falls_back_to_counting(total_work: float) -> None:
    clock, log = FakeClock(), io.StringIO()
    with Progress(4, "study", "runs", stream=log, clock=clock, heartbeat=False,
                  total_work=total_work) as bar:
        clock.now = 10.0
        bar.update(1, work=float("inf"))
    assert log.getvalue().splitlines()[0] == "study: 1/4 runs (25 %), elapsed 0:10, ETA 0:30"
