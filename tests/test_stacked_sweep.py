"""``run_sweep(..., stack=True)``: stacked groups store the same per-run results as solo runs.

Tolerances: a stacked run follows its solo trajectory up to float reassociation (its GEMMs have
other shapes), so its weights differ from solo by ~1e-7 relative after these few steps
(tests/test_stacked.py bounds them by 1e-5). Continuous metrics (losses, effective rank,
singular values, ρ_adv) are compared at 1e-4 relative, 100x that bound. Accuracies and fooling
ratios count examples (1/n steps): a weight change of 1e-6 flips an example only if its margin
(or its attack's) is as small, so they may differ by at most one example of n. On these runs
they are equal in practice; the allowance keeps the test honest about what is guaranteed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rankrobust.cli.main import main
from rankrobust.experiments import ResultsStore, expand, run_id, run_sweep, study_from_dict
from rankrobust.experiments.config import RunConfig, StudyConfig
from rankrobust.experiments.executors import SequentialExecutor
from rankrobust.experiments.run import RunResult, failed_result
from rankrobust.experiments.sweep import tasks

N = 64  # test inputs the attacks see
STUDY: dict[str, Any] = {
    "name": "stacked",
    "dataset": "synthetic",
    "model": "mlp",
    "model_options": {"hidden": [16]},
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "device": "cpu", "validation_size": 64},
    "evaluation": {
        "n": N, "batch_size": N, "deepfool": True, "deepfool_options": {"max_iter": 5},
        "attacks": [
            {"attack": "fgsm", "norm": "inf", "epsilons": [0.05, 0.1]},
            {"attack": "pgd", "norm": "inf", "epsilons": [0.1], "options": {"steps": 3}},
        ],
    },
    "seeds": [0, 1, 2],
    "variants": [
        {"name": "natural"},
        {"name": "l1", "train": {"method": {"name": "l1", "lambda_l1": 0.001, "l1_mode": "proximal"}}},
        {"name": "pgd-adv", "train": {"method": {"name": "pgd-adv", "eps": 0.1, "steps": 2}}},
    ],
}
REL = 1e-4
COUNT = 1 / N + 1e-9  # one example of N


def study(**over: Any) -> StudyConfig:
    return study_from_dict({**copy.deepcopy(STUDY), **over})


@pytest.fixture(scope="module")
def solo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    summary = run_sweep(study(), out=tmp_path_factory.mktemp("solo"), progress=False)
    assert summary.complete == 9
    return summary.db


def metrics(db: Path) -> dict[str, pd.DataFrame]:
    """Per-run results, keyed and sorted so that two databases line up row by row."""
    with ResultsStore(db, readonly=True) as store:
        runs = store.runs().set_index("run_id").sort_index()
        return {
            "runs": runs[["status", "clean_accuracy"]],
            "epochs": store.epoch_metrics().sort_values(["run_id", "epoch"]).reset_index(drop=True),
            "structure": store.structure().sort_values(["run_id", "epoch", "layer"]).reset_index(drop=True),
            "robustness": store.robustness().sort_values(["run_id", "attack", "epsilon"]).reset_index(drop=True),
            "scalars": store.scalars().sort_values(["run_id", "name"]).reset_index(drop=True),
            "spectra": store.spectra().sort_values(["run_id", "layer", "index"]).reset_index(drop=True),
        }


def close(a: Any, b: Any, tol: float, rel: bool) -> bool:
    if math.isnan(float(a)) or math.isnan(float(b)):  # e.g. val_acc before the last epoch
        return math.isnan(float(a)) and math.isnan(float(b))
    if rel:
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=1e-6)
    return abs(float(a) - float(b)) <= tol


def assert_same_results(got: Path, want: Path, only: list[str] | None = None) -> None:
    """Every per-run metric of ``got`` equals ``want``'s within the module's tolerances."""
    a, b = metrics(got), metrics(want)
    if only is not None:
        a = {k: (f.loc[only] if k == "runs" else f[f.run_id.isin(only)].reset_index(drop=True))
             for k, f in a.items()}
        b = {k: (f.loc[only] if k == "runs" else f[f.run_id.isin(only)].reset_index(drop=True))
             for k, f in b.items()}
    assert (a["runs"].status == "complete").all() and (b["runs"].status == "complete").all()
    assert list(a["runs"].index) == list(b["runs"].index)
    checks = {  # table → (key columns, [(column, tolerance, relative?)])
        "runs": ([], [("clean_accuracy", COUNT, False)]),
        "epochs": (["run_id", "epoch"], [("train_loss", REL, True), ("test_loss", REL, True),
                                         ("train_acc", COUNT, False), ("test_acc", COUNT, False),
                                         ("val_acc", COUNT, False), ("lr", REL, True)]),
        "structure": (["run_id", "epoch", "layer"], [("effective_rank", REL, True),
                                                     ("effective_sparsity", REL, True),
                                                     ("nuclear_norm", REL, True)]),
        "robustness": (["run_id", "attack", "epsilon"], [("fooling_ratio", COUNT, False),
                                                         ("robust_accuracy", COUNT, False)]),
        "scalars": (["run_id", "name"], []),
        "spectra": (["run_id", "layer", "index"], [("singular_value", REL, True)]),
    }
    for table, (keys, columns) in checks.items():
        x, y = a[table], b[table]
        assert len(x) == len(y) > 0, table
        for key in keys:
            assert list(x[key]) == list(y[key]), (table, key)
        for column, tol, rel in columns:
            bad = [(i, u, v) for i, (u, v) in enumerate(zip(x[column], y[column], strict=True))
                   if not close(u, v, tol, rel)]
            assert not bad, (table, column, bad[:3])
    for (name, u), v in zip(zip(a["scalars"].name, a["scalars"].value, strict=True),
                            b["scalars"].value, strict=True):  # accuracies count, the rest is continuous
        if name.startswith("time_"):  # wall-clock seconds (time_train_s, ...): not results
            continue
        assert close(u, v, COUNT, False) if name.endswith("_acc") else close(u, v, REL, True), name


class Recording(SequentialExecutor):
    """In-process executor that remembers the size of each task it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def submit(self, configs: Sequence[RunConfig]) -> None:
        self.sizes.append(len(configs))
        super().submit(configs)


def test_groups_of_the_study() -> None:
    """Natural and ℓ1 share an objective and, per seed, their batches: one group per seed;
    PGD-adv's three seeds are one group. Largest first."""
    groups = tasks(expand(study()), stack=True)
    assert [len(g) for g in groups] == [3, 2, 2, 2]
    assert {c.method for c in groups[0]} == {"pgd-adv"}
    for group in groups[1:]:
        assert len({c.seed for c in group}) == 1 and {c.method for c in group} == {"natural", "l1"}
    assert [len(g) for g in tasks(expand(study()), stack=True, max_stack=2)] == [2, 2, 2, 2, 1]
    assert [len(g) for g in tasks(expand(study()), stack=False)] == [1] * 9


def test_stacked_sweep_stores_what_solo_stores(tmp_path: Path, solo_db: Path) -> None:
    ex = Recording()
    summary = run_sweep(study(), out=tmp_path, executor=ex, stack=True, progress=False)
    assert (summary.complete, summary.failed) == (9, 0)
    assert sorted(ex.sizes) == [2, 2, 2, 3]
    assert_same_results(summary.db, solo_db)
    with ResultsStore(summary.db, readonly=True) as store:
        epochs = store.epoch_metrics().merge(store.runs()[["run_id", "method"]], on="run_id")
    sizes = epochs.groupby("method").stack_size.unique()
    assert list(sizes["pgd-adv"]) == [3] and list(sizes["natural"]) == [2]


def test_three_seeds_stacked_in_worker_processes_equal_three_solo_runs(
    tmp_path: Path, solo_db: Path
) -> None:
    """The issue's acceptance test at the sweep level: natural × 3 seeds, one stacked task, run
    by the process pool (2 workers), gives each seed's solo results."""
    natural = study(variants=[STUDY["variants"][0]])
    assert [len(g) for g in tasks(expand(natural), stack=True)] == [3]
    summary = run_sweep(natural, out=tmp_path, workers=2, stack=True, progress=False)
    assert (summary.complete, summary.failed) == (3, 0)
    assert_same_results(summary.db, solo_db, only=sorted(run_id(c) for c in expand(natural)))


class Interrupted(Recording):
    """Interrupts the driver (as Ctrl-C would) when its ``stop_at``-th task is waited for."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at, self.waits = stop_at, 0

    def wait(self) -> list[RunResult]:
        self.waits += 1
        if self.waits == self.stop_at:
            raise KeyboardInterrupt
        return super().wait()


@pytest.mark.parametrize(("first_stacked", "regrouped"), [(True, [2, 2]), (False, [3, 2])])
def test_resume_after_a_partial_sweep(tmp_path: Path, solo_db: Path, first_stacked: bool,
                                      regrouped: list[int]) -> None:
    """A sweep interrupted while its third task runs, then resumed with stacking: only the
    unfinished runs execute, grouped afresh. Stacked first: the tasks were [pgd-adv ×3, seed 0
    natural/ℓ1, seed 1 ..., seed 2 ...], so seeds 1 and 2 are left (one group each, as their
    batches differ). Solo first: natural ×3 and ℓ1 seed 0 finished (study order), so ℓ1 seeds
    1 and 2 (lone seeds: one group) and pgd-adv ×3 are left."""
    with pytest.raises(KeyboardInterrupt):
        run_sweep(study(), out=tmp_path, executor=Interrupted(stop_at=3 if first_stacked else 5),
                  stack=first_stacked, progress=False)
    with ResultsStore(tmp_path / "results.sqlite", readonly=True) as store:
        status = store.runs().set_index("run_id").status
    counts = sorted(status.value_counts().items())
    # the interrupted task's runs are pending again, not left "running"
    assert counts == ([("complete", 5), ("pending", 4)] if first_stacked
                      else [("complete", 4), ("pending", 5)])
    done = list(status[status == "complete"].index)
    ex = Recording()
    again = run_sweep(study(), out=tmp_path, executor=ex, stack=True, progress=False)
    assert (again.skipped, again.executed, again.complete) == (len(done), 9 - len(done), 9 - len(done))
    assert ex.sizes == regrouped
    with ResultsStore(again.db, readonly=True) as store:
        runs = store.runs().set_index("run_id")
    assert (runs.attempts[done] == 1).all()  # finished runs were not touched
    assert_same_results(again.db, solo_db)


def test_a_run_failing_in_a_group_fails_alone(tmp_path: Path) -> None:
    """Two natural runs of seed 0 stack; one's evaluation raises: the other is complete."""
    bad = {"name": "bad", "evaluation": {**STUDY["evaluation"], "attacks": [
        {"attack": "pgd", "norm": "inf", "epsilons": [0.1], "options": {"steps": 0}}]}}
    two = study(seeds=[0], variants=[STUDY["variants"][0], bad])
    ex = Recording()
    summary = run_sweep(two, out=tmp_path, executor=ex, stack=True, progress=False)
    assert ex.sizes == [2]
    assert (summary.complete, summary.failed) == (1, 1)
    with ResultsStore(summary.db, readonly=True) as store:
        runs = store.runs().set_index("variant")
    assert runs.status["natural"] == "complete" and runs.status["bad"] == "failed"
    assert "steps and restarts must be at least 1" in runs.error["bad"]


class CrashingStacks(Recording):
    """Every task of more than one run comes back as if its worker process had been killed."""

    def wait(self) -> list[RunResult]:
        task = self._queue.pop(0)
        if len(task) > 1:
            return [failed_result(run_id(c), RuntimeError("worker killed")) for c in task]
        self._queue.insert(0, task)
        return super().wait()


def test_a_crashed_stack_is_retried_run_by_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    natural = study(variants=[STUDY["variants"][0]], seeds=[0, 1])
    ex = CrashingStacks()
    summary = run_sweep(natural, out=tmp_path, executor=ex, stack=True, progress=True)
    assert ex.sizes == [2, 1, 1]
    assert (summary.complete, summary.failed) == (2, 0)
    err = capsys.readouterr().err
    assert "2 stacked runs failed (RuntimeError: worker killed); running them one by one" in err
    assert "2/2" in err  # the bar counts runs


def test_cli_stack_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    path = tmp_path / "s.yaml"
    small = {**copy.deepcopy(STUDY), "seeds": [0, 1], "variants": [STUDY["variants"][0]],
             "evaluation": {"n": 16, "spectra": False}, "train": {**STUDY["train"], "epochs": 1}}
    path.write_text(yaml.safe_dump(small))
    assert main(["sweep", str(path), "--out", str(tmp_path / "a"), "--max-stack", "2"]) == 2
    assert "--max-stack applies with --stack only" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    argv = ["sweep", str(path), "--out", str(tmp_path / "a"), "--stack", "--max-stack", "2",
            "--no-progress"]
    assert main(argv) == 0
    assert "2 executed (2 complete, 0 failed)" in capsys.readouterr().out
    with ResultsStore(tmp_path / "a" / "results.sqlite", readonly=True) as store:
        assert set(store.epoch_metrics().stack_size) == {2}


def test_cli_reproduce_passes_stacking_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rankrobust.experiments.study as study_module

    seen: dict[str, Any] = {}

    class Stop(Exception):
        """Ends the command before it trains or builds the report."""

    def fake_sweep(study: StudyConfig, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(study_module, "run_sweep", fake_sweep)
    with pytest.raises(Stop):
        main(["reproduce", "--scale", "smoke", "--out", str(tmp_path), "--stack",
              "--max-stack", "4", "--no-progress"])
    assert (seen["stack"], seen["max_stack"]) == (True, 4)


def test_dry_run_previews_the_stacks_of_the_pending_runs(
    tmp_path: Path, solo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "o"
    assert main(["sweep", str(path), "--dry-run", "--stack", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "study stacked: 9 runs; dry run, nothing written"
    assert lines.pop(1).startswith("estimated work: ≈ ")
    assert lines[1] == "with --stack: 9 pending runs in 4 tasks"
    assert lines[2] == "  stack of 3: mlp on synthetic, seeds 0, 1, 2: pgd-adv ×3"
    assert sorted(lines[3:]) == [f"  stack of 2: mlp on synthetic, seed {s}: natural, l1" for s in range(3)]
    assert not out.exists()
    # a database holding 9 complete runs: nothing pending, nothing to stack
    out.mkdir()
    shutil.copy(solo_db, out / "results.sqlite")
    before = (out / "results.sqlite").read_bytes()
    assert main(["sweep", str(path), "--dry-run", "--stack", "--max-stack", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "with --stack: 0 pending runs in 0 tasks" and len(lines) == 3
    assert (out / "results.sqlite").read_bytes() == before
