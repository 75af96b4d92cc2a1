"""Regularizers in the training loop: hooks, amortization, effect on structure, logging, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from rankrobust.cli.main import main
from rankrobust.errors import ConfigError
from rankrobust.methods import TrainingMethod, method_from_config
from rankrobust.methods.l1 import l1_penalty_hooks
from rankrobust.methods.nuclear import auto_svd_every, nuclear_penalty_hooks
from rankrobust.models import build_model
from rankrobust.regularizers import polar_factor, select_weights, singular_value_threshold
from rankrobust.training import TrainConfig, TrainState, train

Data = tuple[torch.Tensor, torch.Tensor]


def _effective_rank(w: torch.Tensor) -> float:
    s = torch.linalg.svdvals(w.detach().reshape(w.shape[0], -1).double())
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _effective_sparsity(w: torch.Tensor) -> float:
    a = w.detach().abs().flatten().double()
    p = a / a.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def RegularizerConfig(kind: str = "natural", **params: object) -> TrainingMethod:  # noqa: N802
    """The method ``kind`` with ``params`` (the tests' shorthand)."""
    return method_from_config({"name": kind, **params})


def _train_mlp(data: tuple[Data, Data], reg: TrainingMethod, epochs: int = 6) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 16, 16), 4, hidden=[32])
    config = TrainConfig(epochs=epochs, batch_size=64, optimizer="sgd", lr=0.1, progress=False,
                         method=reg)
    train(model, data[0], data[1], config)
    return model


def _hidden(model: nn.Module) -> torch.Tensor:
    return select_weights(model)[0].parameter


def _state(model: nn.Module, lr: float) -> TrainState:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return TrainState(model, opt, TrainConfig(lr=lr), torch.device("cpu"))


# --- effect on structure (asserted) ------------------------------------------------------------


@pytest.mark.parametrize(("mode", "method"), [("proximal", "fast"), ("subgradient", "exact")])
def test_effective_rank_falls_as_lambda_nuclear_grows(
    synthetic_data: tuple[Data, Data], mode: str, method: str
) -> None:
    ranks = []
    for lam in (0.0, 0.02, 0.2):
        reg = RegularizerConfig() if lam == 0 else RegularizerConfig(
            kind="nuclear", lambda_nuclear=lam, nuclear_mode=mode, nuclear_method=method)
        ranks.append(_effective_rank(_hidden(_train_mlp(synthetic_data, reg))))
    assert ranks[0] > ranks[1] > ranks[2]
    assert ranks[2] < 0.7 * ranks[0]


@pytest.mark.parametrize("mode", ["proximal", "subgradient"])
def test_effective_sparsity_falls_as_lambda_l1_grows(
    synthetic_data: tuple[Data, Data], mode: str
) -> None:
    sparsity = []
    for lam in (0.0, 1e-3, 1e-2):
        reg = RegularizerConfig() if lam == 0 else RegularizerConfig(
            kind="l1", lambda_l1=lam, l1_mode=mode)
        sparsity.append(_effective_sparsity(_hidden(_train_mlp(synthetic_data, reg))))
    assert sparsity[0] > sparsity[1] > sparsity[2]
    assert sparsity[2] < 0.8 * sparsity[0]


def test_proximal_modes_give_exact_zeros_and_exact_low_rank(synthetic_data: tuple[Data, Data]) -> None:
    model = _train_mlp(synthetic_data, RegularizerConfig(kind="l1", lambda_l1=0.02, l1_mode="proximal"))
    assert int((_hidden(model) == 0).sum()) > 0.5 * _hidden(model).numel()
    model = _train_mlp(synthetic_data, RegularizerConfig(kind="nuclear", lambda_nuclear=0.5))
    assert int(torch.linalg.matrix_rank(_hidden(model).detach(), rtol=1e-5)) < 16  # of 32


# --- hooks: subgradient, amortized prox ---------------------------------------------------------


def test_subgradient_term_has_value_norm_and_gradient_lambda_polar_factor() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 3))
    refs = select_weights(model)
    penalty = nuclear_penalty_hooks(refs, 0.3, "subgradient", "exact", 0)
    assert not penalty.prox_steps and not penalty.final_steps
    state = _state(model, 0.1)
    value = penalty.loss_terms["nuclear"](state)
    expected = 0.3 * sum(float(torch.linalg.svdvals(r.parameter.detach()).sum()) for r in refs)
    assert float(value.detach()) == pytest.approx(expected, rel=1e-5)
    value.backward()  # λ⟨W, stopgrad(U Vᵀ)⟩: the gradient is λ U Vᵀ
    for r in refs:
        assert r.parameter.grad is not None
        torch.testing.assert_close(r.parameter.grad, 0.3 * polar_factor(r.parameter.detach()))


@pytest.mark.parametrize("method", ["exact", "fast"])
def test_amortized_prox_applies_accumulated_threshold(method: str) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(8, 6))
    w0 = model[0].weight.detach().clone()
    penalty = nuclear_penalty_hooks(select_weights(model), 0.5, "proximal", method, 3)  # type: ignore[arg-type]
    (prox,) = penalty.prox_steps
    (final,) = penalty.final_steps
    state = _state(model, 0.1)
    penalty.loss_terms["nuclear"](state)
    for step in (1, 2):  # two steps with no gradient change: no prox yet
        prox(step, 0.1)
    torch.testing.assert_close(model[0].weight.detach(), w0)
    prox(3, 0.1)  # third step: one SVT with τ = 3·lr·λ
    torch.testing.assert_close(model[0].weight.detach(), singular_value_threshold(w0, 0.15),
                               atol=1e-5, rtol=1e-4)
    prox(4, 0.1)
    final()  # flushes the pending τ = lr·λ
    expected = singular_value_threshold(singular_value_threshold(w0, 0.15), 0.05)
    torch.testing.assert_close(model[0].weight.detach(), expected, atol=1e-5, rtol=1e-4)


def test_l1_proximal_step_soft_thresholds_with_the_steps_lr() -> None:
    model = nn.Sequential(nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -0.01, 0.02], [-1.0, 0.3, 0.0]]))
    penalty = l1_penalty_hooks(select_weights(model), 0.2, "proximal")
    state = _state(model, 0.1)
    value = penalty.loss_terms["l1"](state)
    assert float(value) == pytest.approx(0.2 * 1.83) and not value.requires_grad
    (prox,) = penalty.prox_steps
    prox(1, 0.1)  # the loop passes the lr of the step taken, not the schedule's next one
    expected = torch.tensor([[0.48, 0.0, 0.0], [-0.98, 0.28, 0.0]])
    torch.testing.assert_close(model[0].weight.detach(), expected)


def test_auto_svd_every_rule() -> None:
    assert auto_svd_every(120, 400) == 8
    assert auto_svd_every(1024, 1024) > 100
    assert auto_svd_every(1024, 1024) > auto_svd_every(1024, 784)


def test_fast_with_every_one_matches_exact(synthetic_data: tuple[Data, Data]) -> None:
    base: dict[str, object] = {"kind": "nuclear", "lambda_nuclear": 0.1, "svd_every": 1}
    a = _train_mlp(synthetic_data, RegularizerConfig(**base, nuclear_method="exact"), epochs=2)
    b = _train_mlp(synthetic_data, RegularizerConfig(**base, nuclear_method="fast"), epochs=2)
    torch.testing.assert_close(_hidden(a), _hidden(b), atol=1e-4, rtol=1e-3)


# --- logging, determinism, composition ----------------------------------------------------------


def test_penalties_are_logged_and_deterministic(synthetic_data: tuple[Data, Data]) -> None:
    reg = RegularizerConfig(kind="l1+nuclear", lambda_l1=1e-3, lambda_nuclear=0.01,
                            nuclear_mode="subgradient")
    config = TrainConfig(epochs=2, batch_size=64, progress=False, method=reg)
    weights, finals = [], []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("lenet5", (1, 16, 16), 4)
        result = train(model, synthetic_data[0], synthetic_data[1], config)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        finals.append(result.final)
    assert torch.equal(weights[0], weights[1])
    final = finals[0]
    assert final["penalty_l1"] > 0 and final["penalty_nuclear"] > 0
    assert final["penalty"] == pytest.approx(final["penalty_l1"] + final["penalty_nuclear"], rel=1e-5)


def test_product_l1_needs_chained_linear_layers() -> None:
    reg = RegularizerConfig(kind="product-l1", lambda_l1=1e-3)
    penalty = reg.regularize(build_model("mlp", (1, 16, 16), 4, hidden=[8, 6]))
    assert list(penalty.loss_terms) == ["product_l1"]
    with pytest.raises(ConfigError, match="product-l1"):
        reg.regularize(build_model("lenet5", (1, 16, 16), 4))
    with pytest.raises(ConfigError, match="l1_mode"):  # no proximal step: not a parameter
        RegularizerConfig(kind="product-l1", lambda_l1=1e-3, l1_mode="proximal")


def test_layers_pattern_restricts_selection() -> None:
    model = build_model("lenet5", (1, 16, 16), 4)
    reg = RegularizerConfig(kind="nuclear", lambda_nuclear=0.1, layers="classifier", svd_every=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    penalty = reg.regularize(model)
    for step in range(1, 3):
        for prox in penalty.prox_steps:
            prox(step, 0.5)
    changed = {n.rsplit(".", 1)[0] for n, p in model.named_parameters()
               if not torch.equal(p.detach(), before[n])}
    assert changed == {"classifier.0", "classifier.2", "classifier.4"}


# --- CLI ----------------------------------------------------------------------------------------


def _cli(tmp_path: Path, *extra: str) -> int:
    return main(["train", "--dataset", "synthetic", "--model", "lenet5", "--epochs", "1",
                 "--out", str(tmp_path / "out"), "--no-progress", *extra])


def test_cli_regularized_and_adversarial_runs_finish(tmp_path: Path) -> None:
    assert _cli(tmp_path, "--regularizer", "l1+nuclear", "--lambda-l1", "1e-5",
                "--lambda-nuclear", "1e-4", "--nuclear-mode", "proximal") == 0
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert _cli(tmp_path, "--adversarial", "fgsm", "--eps", "0.1") == 0
    assert _cli(tmp_path, "--adversarial", "pgd", "--eps", "0.1", "--adv-steps", "2",
                "--eps-warmup", "1") == 0
    assert _cli(tmp_path, "--method", "nuclear", "--set", "lambda_nuclear=1e-3",
                "--set", "nuclear_method=exact") == 0


@pytest.mark.parametrize("extra", [
    ("--regularizer", "nuclear", "--adversarial", "pgd"),
    ("--method", "l1", "--lambda-l1", "1e-3", "--set", "lambda_l1=1e-2"),
    ("--method", "l1", "--set", "lambda_l1"),
    ("--method", "l1", "--set", "lambda_l1=-1"),
    ("--method", "lowrank", "--set", "rank=4", "--set", "rank_ratio=0.5"),
    ("--regularizer", "l1", "--lambda-nuclear", "1e-3", "--lambda-l1", "1e-3"),
    ("--regularizer", "product-l1", "--lambda-l1", "1e-3", "--l1-mode", "proximal"),
    ("--regularizer", "nuclear", "--lambda-nuclear", "1e-3", "--svd-every", "-1"),
    ("--eps", "0.3"),
    ("--regularizer", "nuclaer", "--lambda-nuclear", "1e-3"),
])
def test_cli_inconsistent_options_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    assert _cli(tmp_path, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rankrobust: error:") and "\n" not in err
