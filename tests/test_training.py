"""Training loop: learning, determinism, schedules, callbacks, divergence."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rankrobust.errors import ConfigError, TrainingDivergedError
from rankrobust.models import build_model
from rankrobust.training import Callback, TrainConfig, TrainState, seed_everything, train
from rankrobust.training.fit import fit


def _run(data: Any, **kw: Any) -> tuple[torch.nn.Module, Any]:
    (tr, te) = data
    seed_everything(kw.get("seed", 0))
    model = build_model("mlp", (1, 16, 16), 4, hidden=[32])
    cfg = TrainConfig(epochs=3, batch_size=64, progress=False, device="cpu", **kw)
    return model, train(model, tr, te, cfg)


def test_learns_synthetic(synthetic_data: Any) -> None:
    _, result = _run(synthetic_data)
    assert result.final["test_acc"] > 0.9
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_same_seed_same_numbers(synthetic_data: Any) -> None:
    m1, r1 = _run(synthetic_data, seed=3)
    m2, r2 = _run(synthetic_data, seed=3)
    for a, b in zip(r1.history, r2.history, strict=True):
        assert {k: v for k, v in a.items() if k != "epoch_seconds"} == {
            k: v for k, v in b.items() if k != "epoch_seconds"
        }
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)
    _, r3 = _run(synthetic_data, seed=4)
    assert r3.history[0]["train_loss"] != r1.history[0]["train_loss"]


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_optimizers_and_schedules(synthetic_data: Any, opt: str, schedule: str) -> None:
    lr = 0.05 if opt == "sgd" else 2e-3
    _, result = _run(synthetic_data, optimizer=opt, schedule=schedule, lr=lr, lr_step_epochs=1)
    lrs = [h["lr"] for h in result.history]
    if schedule == "constant":
        assert lrs == [lr] * 3
    elif schedule == "step":
        assert lrs == pytest.approx([lr * 0.1, lr * 0.01, lr * 0.001])
    else:
        assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and lrs[0] < lr
    assert result.final["test_acc"] > 0.5


class _Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_train_begin(self, state: TrainState) -> None:
        self.events.append("begin")

    def on_after_step(self, state: TrainState) -> None:
        self.events.append("step")

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        metrics["custom"] = state.epoch
        state.records.setdefault("rows", []).append({"epoch": state.epoch + 1})

    def on_train_end(self, state: TrainState) -> None:
        self.events.append("end")


def test_callbacks_are_called_and_can_record(synthetic_data: Any) -> None:
    tr, te = synthetic_data
    rec = _Recorder()
    model = build_model("mlp", (1, 16, 16), 4, hidden=[8])
    result = train(model, tr, te, TrainConfig(epochs=2, batch_size=256, progress=False), [rec])
    assert rec.events[0] == "begin" and rec.events[-1] == "end"
    assert rec.events.count("step") == 2 * 2  # 512 samples / 256 per batch × 2 epochs
    assert [h["custom"] for h in result.history] == [0, 1]
    assert result.history[0]["penalty"] == 0.0  # natural training adds no loss term
    assert result.records["rows"] == [{"epoch": 1}, {"epoch": 2}]


def test_divergence_is_detected(synthetic_data: Any) -> None:
    tr, te = synthetic_data
    x = tr[0].clone()
    x[0, 0, 0, 0] = float("nan")
    model = build_model("mlp", (1, 16, 16), 4, hidden=[8])
    with pytest.raises(TrainingDivergedError, match="diverged"):
        train(model, (x, tr[1]), te, TrainConfig(epochs=1, progress=False))


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0).validate()
    with pytest.raises(ConfigError, match="device"):
        fit("synthetic", "mlp", TrainConfig(epochs=1, device="tpu", progress=False))


def test_fit_trains_named_model_on_named_dataset() -> None:
    fitted = fit("synthetic", "lenet5", TrainConfig(epochs=2, progress=False))
    assert fitted.spec.in_shape == (1, 16, 16) and fitted.result.final["test_acc"] > 0.5


def test_fit_holds_out_validation_examples_and_reports_their_accuracy() -> None:
    fitted = fit("synthetic", "mlp", TrainConfig(epochs=1, progress=False, validation_size=100),
                 {"hidden": [8]})
    final = fitted.result.final
    assert 0.0 <= final["val_acc"] <= 1.0 and final["val_loss"] > 0
    with pytest.raises(ConfigError, match="validation_size"):
        fit("synthetic", "mlp", TrainConfig(epochs=1, progress=False, validation_size=10**6))


def test_train_size_keeps_a_fixed_stratified_subset_disjoint_from_validation() -> None:
    from rankrobust.training.fit import split_data, stratified_subset

    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    x = torch.arange(100).float()[:, None]  # the example's index, to see which were kept
    _, ys = stratified_subset((x, y), 10)
    assert torch.bincount(ys).tolist() == [5, 3, 2]  # each class's share, exactly
    _, ys = stratified_subset((x, y), 7)  # 3.5, 2.1, 1.4: largest remainders get the rest
    assert torch.bincount(ys).tolist() == [4, 2, 1]
    (xt, yt), val = split_data((x, y), TrainConfig(validation_size=20, train_size=40, seed=1))
    (xt2, _), _ = split_data((x, y), TrainConfig(validation_size=20, train_size=40, seed=2))
    assert val is not None and len(xt) == 40 and torch.equal(xt, xt2)  # every seed: one subset
    assert not set(xt.flatten().tolist()) & set(val[0].flatten().tolist())
    assert torch.equal(xt.flatten().sort().values, xt.flatten())  # data order kept
    with pytest.raises(ConfigError, match="train_size 81 must be in 1..80"):
        split_data((x, y), TrainConfig(validation_size=20, train_size=81))
