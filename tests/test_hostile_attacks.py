"""Labels outside [0, K), K the model's number of outputs, are refused by every attack and by
the fooling-ratio curve with one ConfigError line naming the label and K: a label ≥ K never
equals a prediction, so it used to count as "fooled" (a silently wrong ratio) or crash inside
cross-entropy / gather with a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import examples
from rankrobust.attacks import apgd, autoattack, deepfool, fgsm, pgd, square
from rankrobust.attacks.base import check_labels, output_classes, predict
from rankrobust.checkpoint import save_checkpoint
from rankrobust.cli.main import main
from rankrobust.errors import ConfigError
from rankrobust.models import ModelSpec
from rankrobust.robustness import fooling_ratio_curve

K = 5
N_MAX = 6


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, K))


# every attack at its cheapest setting: (model, x, y) → anything
ATTACKS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], Any]] = {
    "fgsm": lambda m, x, y: fgsm(m, x, y, [0.1]),
    "pgd": lambda m, x, y: pgd(m, x, y, [0.1], steps=1),
    "apgd": lambda m, x, y: apgd(m, x, y, [0.1], steps=1),
    "apgd-t": lambda m, x, y: apgd(m, x, y, [0.1], loss="dlr-targeted", steps=1, n_targets=1),
    "square": lambda m, x, y: square(m, x, y, [0.1], n_queries=1),
    "deepfool": lambda m, x, y: deepfool(m, x, y, max_iter=1),
    "autoattack": lambda m, x, y: autoattack(m, x, y, [0.1], steps=1, n_queries=1),
}
MODEL = _model()
X = torch.rand(N_MAX, 1, 2, 2, generator=torch.Generator().manual_seed(1))


def _offender(message: str) -> int:
    found = re.fullmatch(r"label (-?\d+) is out of range for a model with K = 5 outputs "
                         r"\(labels must lie in 0\.\.4\)", message)
    assert found, message
    return int(found.group(1))


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("bad", [K, K + 100, -1, -100, 2**40])
def test_every_attack_refuses_a_label_outside_the_model_classes(name: str, bad: int) -> None:
    y = torch.tensor([0, 1, bad, 2])
    with pytest.raises(ConfigError) as info:
        ATTACKS[name](MODEL, X[:4], y)
    assert _offender(str(info.value)) == bad
    assert "\n" not in str(info.value)


def assert_judged_against(result: object, y: torch.Tensor) -> None:
    """An accepted label is the one the attack judged success against: ``success`` is exactly
    "the model misclassifies ``x_adv``" for the label given, at every budget."""
    x_adv, success = result.x_adv, result.success  # type: ignore[attr-defined]
    if success.dim() == 1:  # a minimal-perturbation attack: (N,)
        x_adv, success = x_adv[None], success[None]
    assert success.shape == (x_adv.shape[0], len(y))
    for k in range(success.shape[0]):
        wrong = predict(MODEL, x_adv[k]) != y.long()
        assert torch.equal(success[k], wrong), (k, success[k], wrong)


@pytest.mark.parametrize("name", ATTACKS)
def test_every_attack_accepts_the_extreme_valid_labels(name: str) -> None:
    y = torch.tensor([0, K - 1, K - 1, 0], dtype=torch.uint8)
    assert_judged_against(ATTACKS[name](MODEL, X[:4], y), y)


@settings(max_examples=examples(40), deadline=None)
@given(labels=st.lists(st.integers(-2 * K, 3 * K), min_size=1, max_size=N_MAX))
def test_labels_are_refused_iff_one_lies_outside_0_to_k(labels: list[int]) -> None:
    y = torch.tensor(labels)
    x = X[: len(labels)]
    out_of_range = [v for v in labels if not 0 <= v < K]
    for name, attack in ATTACKS.items():
        if not out_of_range:
            assert_judged_against(attack(MODEL, x, y), y)  # valid labels never raise, and are used
            continue
        with pytest.raises(ConfigError) as info:
            attack(MODEL, x, y)
        bad = _offender(str(info.value))
        assert bad in out_of_range, (name, labels, bad)


def test_check_labels_and_output_classes() -> None:
    assert output_classes(MODEL, X.double()) == K  # moved to the model's dtype
    check_labels(torch.zeros(0, dtype=torch.long), K)
    check_labels(torch.arange(K), K)
    with pytest.raises(ConfigError, match="label 5 is out of range .* K = 5"):
        check_labels(torch.arange(K + 1), K)
    with pytest.raises(ConfigError, match=r"logits \(N, K\), got \(1, 2, 2, 2\)"):
        output_classes(nn.Sequential(nn.Conv2d(1, 2, 1)), X)


@pytest.mark.parametrize("name", ATTACKS)
def test_every_attack_refuses_a_model_with_non_finite_logits(name: str) -> None:
    huge = _model()
    with torch.no_grad():
        huge[1].weight.fill_(3e38)  # finite weights, infinite logits: argmax would be arbitrary
    with pytest.raises(ConfigError, match="NaN or infinite logits"):
        ATTACKS[name](huge, X[:4], torch.tensor([0, 1, 2, 3]))


def test_output_classes_restores_modes_and_runs_batchnorm_on_one_input() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3))
    model.train()
    assert output_classes(model, X) == 3  # eval mode: batch norm of one input is fine
    assert all(m.training for m in model.modules())


def test_fooling_ratio_curve_refuses_true_labels_outside_the_model_classes() -> None:
    y = torch.tensor([0, 1, 2, 3, 4, K])
    with pytest.raises(ConfigError, match="label 5 is out of range for a model with K = 5"):
        fooling_ratio_curve(MODEL, (X, y), "fgsm", [0.1])
    with pytest.raises(ConfigError, match="label -1 is out of range"):
        fooling_ratio_curve(MODEL, (X, y - 1), "fgsm", [0.1])
    curve = fooling_ratio_curve(MODEL, (X, y % K), "fgsm", [0.1])
    assert 0 <= float(curve["clean_accuracy"].iloc[0]) <= 1


def test_evaluate_a_model_with_fewer_classes_than_its_dataset_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ModelSpec("mlp", (1, 16, 16), 2, {"hidden": [4]})  # synthetic has 4 classes
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "ck", spec.build(), spec, {"dataset": "synthetic"})
    argv = ["evaluate", str(ck), "--attack", "fgsm", "--eps", "0.1", "--n", "8", "--no-sanity"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rankrobust: error: ") and err.count("\n") == 1, err
    assert "out of range for a model with K = 2 outputs" in err
