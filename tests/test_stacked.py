"""Stacked training: K runs trained as one stacked model equal the same runs trained alone."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from rankrobust.errors import TrainingDivergedError
from rankrobust.methods import method_from_config
from rankrobust.training import TrainConfig
from rankrobust.training import stacked as stacked_module
from rankrobust.training.fit import FitResult, fit, model_spec_for
from rankrobust.training.stacked import (
    can_stack,
    fit_many,
    stack_groups,
    train_stacked,
)
from rankrobust.training.stacked_model import can_stack_network, stack_networks, unstack_into

MLP = {"hidden": [16]}
ATOL = 1e-5


def config(method: Any = "natural", seed: int = 0, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(epochs=2, batch_size=64, seed=seed, device="cpu", progress=False)
    return TrainConfig(**{**base, **kw, "method": method_from_config(method)})


def assert_same(stacked: FitResult, solo: FitResult) -> None:
    """Weights, every history metric and structure record of two fits agree within ATOL."""
    for (name, a), b in zip(stacked.model.state_dict().items(), solo.model.state_dict().values(),
                            strict=True):
        assert torch.allclose(a, b, atol=ATOL, rtol=0), f"{name}: {(a - b).abs().max():.2e}"
    assert len(stacked.result.history) == len(solo.result.history)
    for got, want in zip(stacked.result.history, solo.result.history, strict=True):
        assert list(got) == list(want)  # same metrics, same order
        for key, value in want.items():
            if key != "epoch_seconds":
                assert math.isclose(got[key], value, rel_tol=1e-5, abs_tol=ATOL), key
    rows = stacked.result.records.get("structure", [])
    want_rows = solo.result.records.get("structure", [])
    assert len(rows) == len(want_rows)
    for got, want in zip(rows, want_rows, strict=True):
        assert (got["epoch"], got["layer"], got["shape"]) == (want["epoch"], want["layer"], want["shape"])
        assert math.isclose(got["effective_rank"], want["effective_rank"], rel_tol=1e-5)


def check_group(model: str, configs: list[TrainConfig], options: dict[str, Any] | None = None) -> None:
    stacked = train_stacked("synthetic", model, configs, options)
    for c, got in zip(configs, stacked, strict=True):
        assert isinstance(got, FitResult)
        assert got.config is c
        assert_same(got, fit("synthetic", model, c, options))


def test_natural_three_seeds_match_solo() -> None:
    configs = [config(seed=s, track_structure=True, validation_size=64) for s in (0, 1, 2)]
    check_group("mlp", configs, MLP)


def test_regularized_three_seeds_match_solo() -> None:
    """l1+nuclear with both proximal steps, decomposed every 2 steps, per-run data order."""
    method = {"name": "l1+nuclear", "lambda_l1": 1e-3, "lambda_nuclear": 1.0, "l1_mode": "proximal",
              "svd_every": 2}
    check_group("lenet5", [config(method, seed=s) for s in (0, 1, 2)])


def test_one_seed_many_methods_share_batches_and_match_solo() -> None:
    """One seed: shared batches; blocks of natural, l1 (two λ), nuclear (fast, exact)."""
    methods = [
        "natural",
        {"name": "l1", "lambda_l1": 3e-3, "l1_mode": "proximal"},
        {"name": "l1", "lambda_l1": 1e-3, "l1_mode": "proximal"},
        {"name": "nuclear", "lambda_nuclear": 3.0, "svd_every": 3},
        {"name": "nuclear", "lambda_nuclear": 0.3, "nuclear_mode": "subgradient"},
        {"name": "nuclear", "lambda_nuclear": 1.0, "nuclear_method": "exact", "svd_every": 2},
        {"name": "l1+nuclear", "lambda_l1": 1e-4, "lambda_nuclear": 1.0},
    ]
    check_group("mlp", [config(m, track_structure=True) for m in methods], MLP)


def test_weight_decay_stacked_matches_solo() -> None:
    """Two λ × two seeds of weight decay (per-run data order), and one seed beside natural."""
    methods = [{"name": "weight-decay", "lambda_wd": lam} for lam in (1e-2, 1e-3)]
    check_group("mlp", [config(m, seed=s, track_structure=True) for m in methods for s in (0, 1)], MLP)
    check_group("lenet5", [config(methods[0]), config("natural")])


def test_pgd_adv_three_seeds_match_solo() -> None:
    method = {"name": "pgd-adv", "eps": 0.1, "steps": 2}
    check_group("mlp", [config(method, seed=s) for s in (0, 1, 2)], MLP)


def test_stacked_forward_equals_each_network() -> None:
    """Shared (B, C, H, W) and per-run (B, K·C, H, W) inputs give each network's own logits."""
    torch.manual_seed(0)
    cases: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("synthetic", "mlp", MLP), ("synthetic", "lenet5", {}),
        ("cifar10", "cnn-small", {"widths": [4], "fc": 8}),  # 3 channels: per-run Normalize
    )
    for dataset, name, options in cases:
        spec = model_spec_for(dataset, name, options)
        nets = [spec.build() for _ in range(3)]
        stacked = stack_networks(nets)
        x = torch.rand(3, 5, *spec.in_shape)  # (K, B, C, H, W)
        shared = stacked(x[0]).view(5, 3, -1)
        per_run = stacked(x.transpose(0, 1).reshape(5, -1, *spec.in_shape[1:])).view(5, 3, -1)
        for k, net in enumerate(nets):
            assert torch.allclose(shared[:, k], net(x[0]), atol=1e-5)
            assert torch.allclose(per_run[:, k], net(x[k]), atol=1e-5)
        with torch.no_grad():
            for p in stacked.parameters():
                p.add_(1.0)
        unstack_into(stacked, nets)
        params = dict(stacked.named_parameters())
        for k, net in enumerate(nets):
            for name, p in net.named_parameters():
                assert torch.equal(p, params[name][k]), name


def test_what_stacks() -> None:
    assert can_stack([config(), config({"name": "l1"}, seed=1), config("nuclear", seed=2)])
    assert can_stack([config("pgd-adv", seed=s) for s in (0, 1)])
    assert not can_stack([config(), config("pgd-adv")])  # different objectives
    assert not can_stack([config(), config(lr=1e-3)])  # different optimizer settings
    for name in ("trades", "fgsm-adv", "lowrank", "product-l1"):
        assert not can_stack([config(name), config(name, seed=1)]), name
    assert not can_stack_network(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout()))


def run(method: Any, seed: int = 0, model: str = "mlp", **kw: Any) -> SimpleNamespace:
    return SimpleNamespace(dataset="synthetic", model=model, model_options=MLP, data_dir=None,
                           train=config(method, seed=seed, **kw))


def test_stack_groups() -> None:
    runs = [
        run("natural", 0), run({"name": "l1"}, 0), run("nuclear", 0),  # seed 0: shared batches
        run("natural", 1), run("natural", 2),  # lone seeds: stacked together
        run("pgd-adv", 0), run("pgd-adv", 1),  # one PGD group across seeds
        run("trades", 0),  # solo
        run("natural", 0, lr=1e-3),  # other optimizer settings: its own group
    ]
    groups = stack_groups(runs)
    assert sorted(map(sorted, groups)) == [[0, 1, 2], [3, 4], [5, 6], [7], [8]]
    assert [len(g) for g in stack_groups(runs[:3], max_size=2)] == [2, 1]


def test_fit_many_falls_back_to_solo(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(stacked_module, "train_stacked", broken)
    configs = [config(seed=s, epochs=1) for s in (0, 1)]
    with pytest.warns(RuntimeWarning, match="boom"):
        results = fit_many("synthetic", "mlp", configs, MLP)
    for c, got in zip(configs, results, strict=True):
        assert isinstance(got, FitResult)
        assert_same(got, fit("synthetic", "mlp", c, MLP))


def test_a_diverged_run_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run 1's loss turns NaN at step 3: it gets solo's error, runs 0 and 2 their solo results."""
    real = stacked_module.stacked_objective

    def poisoned(methods: Any, seeds: Any) -> Any:
        inner = real(methods, seeds)

        def objective(model: Any, x: torch.Tensor, y: torch.Tensor, info: Any) -> Any:
            losses, logits = inner(model, x, y, info)
            if info.step == 3:
                losses = losses * torch.tensor([1.0, float("nan"), 1.0])
            return losses, logits

        return objective

    monkeypatch.setattr(stacked_module, "stacked_objective", poisoned)
    configs = [config(seed=s, track_structure=True) for s in (0, 1, 2)]
    results = train_stacked("synthetic", "mlp", configs, MLP)
    assert isinstance(results[1], TrainingDivergedError)
    assert "epoch 1" in str(results[1])
    for i in (0, 2):
        got = results[i]
        assert isinstance(got, FitResult)
        assert_same(got, fit("synthetic", "mlp", configs[i], MLP))
