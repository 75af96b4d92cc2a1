"""Validation-based epoch selection (Rice et al. 2020) and collapse detection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from rankrobust.configuration import to_dict
from rankrobust.errors import ConfigError
from rankrobust.experiments.run import RunResult, _training_facts
from rankrobust.methods import method_from_config
from rankrobust.models import ModelSpec, build_model
from rankrobust.training import TrainConfig, evaluate, seed_everything, train
from rankrobust.training import selection as selection_module
from rankrobust.training.fit import FitResult
from rankrobust.training.loop import TrainResult
from rankrobust.training.selection import EpochSelector, best_epoch, detect_collapse


class OnlyKey(dict[str, Any]):
    """A metrics row that fails the test when anything but ``allowed`` is read."""

    allowed = "val_acc"

    def __getitem__(self, key: str) -> Any:
        assert key == self.allowed, f"selection read {key!r}"
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        assert key == self.allowed, f"selection read {key!r}"
        return super().get(key, default)


def test_best_epoch_is_the_earliest_maximum_and_reads_only_its_key() -> None:
    rows = [OnlyKey(val_acc=v, test_acc=1.0 - v) for v in (0.2, 0.7, 0.5, 0.7, 0.6)]
    assert best_epoch(rows, "val_acc") == 2
    with pytest.raises(ValueError, match="no epoch has"):
        best_epoch([{"test_acc": 0.9}], "val_acc")


def _history(**columns: list[float]) -> list[dict[str, float]]:
    n = len(next(iter(columns.values())))
    return [{"epoch": i + 1, **{k: v[i] for k, v in columns.items()}} for i in range(n)]


@pytest.mark.parametrize(("history", "expected"), [
    # PGD knocked to chance right after a one-epoch ramp (MNIST-5k, v1): clean → 1/C
    (_history(val_acc=[0.62, 0.091, 0.10, 0.11]), [(2, "val_acc", 0.091, 0.62)]),
    # FGSM catastrophic overfitting: robust accuracy → 0 while clean accuracy rises
    (_history(val_acc=[0.7, 0.8, 0.9], val_robust_acc=[0.3, 0.4, 0.0]),
     [(3, "val_robust_acc", 0.0, 0.4)]),
    # below chance from the start (a natural network's robust accuracy): never above, no collapse
    (_history(val_acc=[0.8, 0.85], val_robust_acc=[0.01, 0.19]), []),
    # ramp: robust accuracy at the full ε starts near 0 and rises: no collapse
    (_history(val_robust_acc=[0.02, 0.25, 0.31, 0.33]), []),
    # a dip that stays clearly above chance (12.5 % < 0.14) is noise, not a collapse
    (_history(val_acc=[0.5, 0.14, 0.5]), []),
    # both collapse: listed by epoch; the first epoch of each only
    (_history(val_acc=[0.5, 0.5, 0.1, 0.1], val_robust_acc=[0.3, 0.05, 0.0, 0.0]),
     [(2, "val_robust_acc", 0.05, 0.3), (3, "val_acc", 0.1, 0.5)]),
    # epochs without the metric are skipped (only the final one measured)
    (_history(train_acc=[0.5, 0.6]), []),
])
def test_collapse_on_made_up_histories(history: list[dict[str, float]],
                                       expected: list[tuple[int, str, float, float]]) -> None:
    assert detect_collapse(history, num_classes=10) == expected


def test_a_collapsed_run_gets_the_scalar_and_a_warning() -> None:
    history = _history(val_acc=[0.6, 0.8, 0.1], test_acc=[0.6, 0.8, 0.1])
    fitted = FitResult(torch.nn.Linear(2, 2), ModelSpec("mlp", (1, 4, 4), 10), TrainConfig(),
                       "synthetic", TrainResult(history, best_epoch=2))
    result = RunResult("r", "complete")
    _training_facts(fitted, result)
    assert result.scalars == {"best_epoch": 2.0, "collapsed": 1.0, "collapse_epoch": 3.0}
    assert result.warnings == ["training collapsed: val_acc fell to 10.0% at epoch 3 (was 80.0%; "
                               "chance 10.0%); the selected epoch 2 is kept"]
    fine = FitResult(fitted.model, fitted.spec, fitted.config, "synthetic",
                     TrainResult(history[:2]))
    result = RunResult("r", "complete")
    _training_facts(fine, result)
    assert result.scalars == {"best_epoch": 2.0, "collapsed": 0.0} and not result.warnings


def _split(data: Any) -> tuple[Any, Any]:
    (x, y), _ = data
    return (x[:400], y[:400]), (x[400:600], y[400:600])


def _train(data: Any, test: Any, **kw: Any) -> tuple[torch.nn.Module, TrainResult]:
    train_part, val = _split(data)
    seed_everything(0)
    model = build_model("mlp", (1, 16, 16), 4, hidden=[16])
    config = TrainConfig(epochs=4, batch_size=32, lr=0.02, progress=False, validation_size=200, **kw)
    return model, train(model, train_part, test, config, val_data=val)


def test_selection_restores_the_best_validation_epoch(synthetic_data: Any) -> None:
    model, result = _train(synthetic_data, synthetic_data[1], select_epoch="val_acc",
                           schedule="constant")
    val = _split(synthetic_data)[1]
    chosen = best_epoch(result.history, "val_acc")
    assert result.best_epoch == chosen and all("val_acc" in row for row in result.history)
    assert result.final is result.history[chosen - 1]
    loss, acc = evaluate(model, *val)
    assert (loss, acc) == (result.final["val_loss"], result.final["val_acc"])
    test_loss, test_acc = evaluate(model, *synthetic_data[1])
    assert (test_loss, test_acc) == (result.final["test_loss"], result.final["test_acc"])


class Spy(torch.Tensor):
    """A tensor that logs every torch operation on it while ``watching``."""

    watching = False
    reads: ClassVar[list[str]] = []
    seen: ClassVar[list[str]] = []

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        (cls.reads if cls.watching else cls.seen).append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


@contextmanager
def watching_selection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Spy.watching is on exactly while the selector measures and chooses."""
    observe = EpochSelector.observe

    def spied(self: EpochSelector, model: torch.nn.Module, epoch: int) -> dict[str, float]:
        Spy.watching = True
        try:
            return observe(self, model, epoch)
        finally:
            Spy.watching = False

    monkeypatch.setattr(EpochSelector, "observe", spied)
    Spy.reads.clear()
    Spy.seen.clear()
    yield


@pytest.mark.parametrize("method", [{"name": "natural"}, {"name": "fgsm-rs", "eps": 0.1}])
def test_selection_never_reads_the_test_split(synthetic_data: Any, monkeypatch: pytest.MonkeyPatch,
                                              method: dict[str, Any]) -> None:
    key = "val_acc" if method["name"] == "natural" else "val_robust_acc"
    kw = {"select_epoch": key, "method": method_from_config(method), "val_attack_n": 64}
    x_test, y_test = synthetic_data[1]
    spied_test = (x_test.as_subclass(Spy), y_test.as_subclass(Spy))
    with watching_selection(monkeypatch):
        model, result = _train(synthetic_data, spied_test, **kw)
    assert Spy.seen, "the spy saw nothing: the test split was not used at all"  # the curve
    assert Spy.reads == [], f"selection touched the test split: {Spy.reads[:5]}"
    # and the choice does not depend on the test split: scrambled test labels, same run
    scrambled = (x_test.flip(0), y_test.roll(1))
    again_model, again = _train(synthetic_data, scrambled, **kw)
    assert again.best_epoch == result.best_epoch
    for a, b in zip(model.parameters(), again_model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert result.best_epoch == best_epoch(result.history, key)


def test_robust_selection_uses_the_methods_eps(synthetic_data: Any, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    budgets = []
    real = selection_module.robust_accuracy

    def recording(model: Any, x: Any, y: Any, eps: float, steps: int, batch_size: int) -> float:
        budgets.append((eps, steps, len(x)))
        return real(model, x, y, eps, steps, batch_size)

    monkeypatch.setattr(selection_module, "robust_accuracy", recording)
    _, result = _train(synthetic_data, None, select_epoch="val_robust_acc", val_attack_steps=3,
                       val_attack_n=50, method=method_from_config({"name": "pgd-adv", "eps": 0.05,
                                                                   "steps": 2}))
    assert budgets == [(0.05, 3, 50)] * 4
    assert all(0 <= row["val_robust_acc"] <= row["val_acc"] + 0.25 for row in result.history)


def test_selection_settings_are_validated_and_keep_old_run_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a method with a training eps"):
        TrainConfig(validation_size=10, select_epoch="val_robust_acc")
    with pytest.raises(ConfigError, match="set validation_size > 0"):
        TrainConfig(select_epoch="val_acc")
    with pytest.raises(ConfigError, match="select_epoch must be one of"):
        TrainConfig(validation_size=10, select_epoch="best")  # type: ignore[arg-type]
    assert "select_epoch" not in to_dict(TrainConfig())  # v1 configs hash as before
    assert to_dict(TrainConfig(validation_size=5, select_epoch="val_acc"))["select_epoch"] == "val_acc"


def test_runs_command_shows_the_collapse_epoch_and_the_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rankrobust.cli.main import main
    from rankrobust.experiments.config import RunConfig
    from rankrobust.experiments.grid import run_id
    from rankrobust.experiments.store import ResultsStore

    configs = [RunConfig(dataset="synthetic", train=TrainConfig(seed=s)) for s in (0, 1)]
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        store.register(configs)
        for config, collapsed in zip(configs, (True, False), strict=True):
            scalars = {"collapsed": 1.0, "collapse_epoch": 3.0} if collapsed else {"collapsed": 0.0}
            store.record(RunResult(run_id(config), "complete", scalars=scalars,
                                   warnings=["training collapsed: ..."] if collapsed else []))
    assert main(["runs", "--db", str(db), "--format", "json"]) == 0
    rows = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    first, second = (rows[run_id(c)] for c in configs)
    assert (first["collapsed"], first["warnings"]) == (3, 1)
    assert (second["collapsed"], second["warnings"]) == (None, 0)
    assert main(["runs", "--db", str(db)]) == 0
    assert "collapsed" in capsys.readouterr().out.splitlines()[0]
