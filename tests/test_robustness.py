"""fooling_ratio_curve, rho_adv, sanity checks and the ``rankrobust evaluate`` command."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from rankrobust.attacks.base import predict
from rankrobust.checkpoint import load_checkpoint, save_checkpoint
from rankrobust.cli.main import build_parser, main
from rankrobust.data import load_dataset
from rankrobust.errors import ConfigError
from rankrobust.models import ModelSpec
from rankrobust.robustness import fooling_ratio_curve, rho_adv, sanity_checks
from rankrobust.robustness.curves import COLUMNS, ENSEMBLE_COLUMNS
from rankrobust.training import train
from rankrobust.training.config import TrainConfig

SPEC = ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [32], "mean": [0.5], "std": [0.3]})



@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = SPEC.build()
    train(model, load_dataset("synthetic", "train"), None,
          TrainConfig(epochs=4, optimizer="adam", lr=0.003, batch_size=32, progress=False,
                      device="cpu"))
    x, y = load_dataset("synthetic", "test")
    return model.eval(), (x[:96], y[:96])


OPTIONS: dict[str, dict[str, int]] = {
    "pgd": {"steps": 5}, "apgd-ce": {"steps": 5}, "apgd-dlr": {"steps": 5}, "apgd-t": {"steps": 5},
    "square": {"n_queries": 30}, "autoattack": {"steps": 5, "n_targets": 2, "n_queries": 30},
}


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square",
                                    "autoattack", "deepfool"])
def test_curve_columns_and_invariants(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]], attack: str
) -> None:
    model, data = trained
    eps = [0.3, 0.0, 0.1, 2.0]  # unsorted on purpose
    opts = OPTIONS.get(attack, {})
    curve = fooling_ratio_curve(model, data, attack, eps, norm="2" if attack == "deepfool" else "inf",
                                batch_size=40, seed=0, **opts)
    assert list(curve.columns) == (ENSEMBLE_COLUMNS if attack == "autoattack" else COLUMNS)
    assert curve["epsilon"].tolist() == eps and (curve["n"] == 96).all()
    by_eps = curve.sort_values("epsilon")
    assert by_eps["fooling_ratio"].is_monotonic_increasing
    assert curve.loc[curve["epsilon"] == 0, "fooling_ratio"].item() == 0
    acc = curve["clean_accuracy"]
    assert ((curve["robust_accuracy"] - acc * (1 - curve["fooling_ratio_correct"])).abs() < 1e-9).all()
    assert (curve["fooling_ratio"] <= 1).all() and acc.iloc[0] > 0.5


def test_curve_is_deterministic_and_uses_the_global_seed(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Square with 5 queries at ε = 0.5 breaks about a third of the inputs, which ones depending
    on its random draws: the same seed gives the same curve, another seed another one, and
    without a seed the draws come from torch's global RNG (same global seed, same curve)."""
    model, data = trained
    eps = [0.3, 0.5, 1.0]

    def curve(seed: int | None) -> pd.DataFrame:
        return fooling_ratio_curve(model, data, "square", eps, n_queries=5, seed=seed)

    a, b, other = curve(5), curve(5), curve(6)
    pd.testing.assert_frame_equal(a, b)
    assert a["fooling_ratio"].tolist() != other["fooling_ratio"].tolist()  # the seed is used
    assert 0 < a["fooling_ratio"].iloc[1] < 1  # a partial break: the draws matter here
    torch.manual_seed(3)
    c = curve(None)
    torch.manual_seed(3)
    d = curve(None)
    torch.manual_seed(4)
    e = curve(None)
    pd.testing.assert_frame_equal(c, d)
    assert c["fooling_ratio"].tolist() != e["fooling_ratio"].tolist()  # the global RNG is used


def test_curve_counts_label_changes_not_errors() -> None:
    """A constant classifier is never fooled, whatever the true labels."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    nn.init.zeros_(model[1].weight)
    with torch.no_grad():
        model[1].bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    x, y = torch.rand(10, 1, 2, 2), torch.arange(10) % 3
    for attack, opts in (("pgd", {"steps": 3}), ("autoattack", OPTIONS["autoattack"])):
        curve = fooling_ratio_curve(model, (x, y), attack, [0.5], **opts)
        assert curve["fooling_ratio"].item() == 0
        assert curve["clean_accuracy"].item() == pytest.approx(0.3)
        assert curve["robust_accuracy"].item() == pytest.approx(0.3)  # misclassified: not robust


def test_autoattack_curve_counts_robust_accuracy_on_true_labels(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    model, (x, y) = trained
    y = y.clone()
    y[:10] = (predict(model, x[:10]) + 1) % 4  # ten inputs misclassified unperturbed
    curve = fooling_ratio_curve(model, (x, y), "autoattack", [0.0, 0.05, 0.2], batch_size=40,
                                seed=0, **OPTIONS["autoattack"])
    n = len(x)
    for row in curve.to_dict(orient="records"):
        counts = json.loads(row["broken_by"])
        assert list(counts) == ["clean", "apgd-ce", "apgd-t", "square"]
        assert counts["clean"] == n - round(row["clean_accuracy"] * n) >= 10
        # every input is robust, misclassified, or broken by exactly one member
        assert sum(counts.values()) == round(n * (1 - row["robust_accuracy"]))
    assert curve["robust_accuracy"].iloc[0] == curve["clean_accuracy"].iloc[0]
    assert curve["robust_accuracy"].iloc[2] < curve["robust_accuracy"].iloc[1]


def test_rho_adv_is_mean_relative_deepfool_norm(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    from rankrobust.attacks import deepfool

    model, (x, y) = trained
    rho = rho_adv(model, (x, y), batch_size=50)
    res = deepfool(model, x, predict(model, x))
    expected = (res.norms / x.flatten(1).norm(dim=1))[res.success].double().mean()
    assert rho == pytest.approx(float(expected), rel=1e-5)
    assert 0 < rho < 1


def test_bad_curve_arguments(trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]) -> None:
    model, data = trained
    with pytest.raises(ConfigError, match="unknown attack"):
        fooling_ratio_curve(model, data, "cw", [0.1])
    with pytest.raises(ConfigError):
        fooling_ratio_curve(model, data, "fgsm", [0.1], norm="1")
    with pytest.raises(ConfigError):
        fooling_ratio_curve(model, data, "fgsm", [0.1], n=0)


def test_sanity_checks_pass_on_a_healthy_model(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    model, data = trained
    curve = fooling_ratio_curve(model, data, "autoattack", [0.05, 0.1, 0.2], steps=20,
                                n_queries=300, seed=0)
    assert sanity_checks(model, data, curve, seed=0) == []


def test_sanity_checks_flag_a_stronger_attack(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """On this model targeted DLR (APGD-T) fools ~20 points more inputs than CE-based PGD."""
    model, data = trained
    curve = fooling_ratio_curve(model, data, "pgd", [0.05, 0.2], steps=10, seed=0)
    text = "\n".join(sanity_checks(model, data, curve, seed=0, queries=100))
    assert "a stronger attack (autoattack) fools" in text and "than pgd at ε=0.2" in text
    assert "ε=0.05" not in text  # nothing is fooled there by either


def test_sanity_checks_reuse_the_runs_other_curves(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a stored autoattack and fgsm curve of the same norm, checks 1 and 7 compare against
    them at the shared budgets and run no attack themselves; a stored ensemble that fools more
    than the reported curve is flagged with the stored numbers."""
    import rankrobust.robustness.sanity as sanity_module

    model, data = trained
    eps = [0.05, 0.2]
    curve = fooling_ratio_curve(model, data, "pgd", eps, steps=10, seed=0)
    fgsm = fooling_ratio_curve(model, data, "fgsm", eps)
    stronger = curve.assign(attack="autoattack", fooling_ratio=curve["fooling_ratio"] + 0.25)
    stronger = stronger[stronger["epsilon"] == 0.2]  # shares only ε = 0.2 with the curve
    calls: list[str] = []
    real = sanity_module.fooling_ratio_curve

    def spy(model_: nn.Module, data_: object, attack: str, *args: object, **kwargs: object) -> pd.DataFrame:
        calls.append(attack)
        return real(model_, data_, attack, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sanity_module, "fooling_ratio_curve", spy)
    warnings = sanity_checks(model, data, curve, seed=0, model_checks=False,
                             reference=pd.concat([fgsm, stronger], ignore_index=True))
    assert calls == []  # everything came from the reference curves
    text = "\n".join(warnings)
    assert "a stronger attack (autoattack) fools 25.0 points more inputs than pgd at ε=0.2" in text
    assert "ε=0.05" not in text  # no stored ensemble there: not compared, not recomputed
    # without a reference the same checks run the attacks themselves (fgsm and the ensemble)
    sanity_checks(model, data, curve, seed=0, model_checks=False, queries=50)
    assert calls == ["fgsm", "autoattack"]


class Quantized(nn.Module):
    """Gradient masking by construction: round(4x)/4 has zero gradient everywhere."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


def test_sanity_checks_flag_gradient_masking(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    model, data = trained
    masked = Quantized(model).eval()
    curve = fooling_ratio_curve(masked, data, "pgd", [0.1, 0.2, 0.4], steps=5, seed=0)
    warnings = sanity_checks(masked, data, curve, seed=0)
    text = "\n".join(warnings)
    assert "exactly zero" in text and "deepfool" in text and "whole input box" in text
    assert "gradient-free square broke" in text  # where APGD-CE and APGD-T found nothing
    assert all("\n" not in w for w in warnings)


def test_sanity_checks_flag_noise_beating_the_attack_and_weak_iterations(
    trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
) -> None:
    model, data = trained
    weak = pd.DataFrame({"attack": ["pgd"] * 2, "norm": ["inf"] * 2, "epsilon": [0.3, 0.6],
                         "fooling_ratio": [0.0, 0.0]})  # a broken attack that fools nothing
    text = "\n".join(sanity_checks(model, data, weak, seed=0))
    assert "random noise of size ε=0.6 fools more inputs than pgd" in text
    assert "fewer inputs than single-step fgsm" in text


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory,
               trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]) -> str:
    path = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(path, trained[0], SPEC, {"dataset": "synthetic"})
    return str(path)


def test_cli_evaluate_prints_a_curve(checkpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", checkpoint, "--attack", "pgd", "--eps", "0.05,0.2", "--n", "64",
                 "--steps", "5", "--format", "json", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0
    rows = json.loads(out.out)
    assert [r["epsilon"] for r in rows] == [0.05, 0.2] and rows[0]["n"] == 64
    assert rows[0]["fooling_ratio"] <= rows[1]["fooling_ratio"]
    # stderr holds exactly the sanity checks' warnings for this curve, one line each (none
    # may be dropped, and nothing else printed): recomputed with the command's own settings
    args = build_parser().parse_args(["evaluate", checkpoint, "--eps", "0.1"])  # defaults
    model = load_checkpoint(checkpoint).model.eval()
    data = load_dataset("synthetic", "test")
    curve = fooling_ratio_curve(model, data, "pgd", [0.05, 0.2], batch_size=args.batch_size,
                                n=64, seed=args.seed, steps=5)
    assert curve["fooling_ratio"].tolist() == [r["fooling_ratio"] for r in rows]
    expected = sanity_checks(model, data, curve, batch_size=args.batch_size, n=64, seed=args.seed)
    assert out.err.splitlines() == [f"warning: {w}" for w in expected]
    assert main(["evaluate", checkpoint, "--attack", "pgd", "--eps", "0.05,0.2", "--n", "64",
                 "--steps", "5", "--format", "json", "--device", "cpu", "--no-sanity"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_evaluate_autoattack(checkpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", checkpoint, "--attack", "autoattack", "--eps", "0.1,0.2",
                 "--n", "32", "--steps", "5", "--queries", "20", "--format", "json",
                 "--device", "cpu", "--no-sanity"])
    out = capsys.readouterr()
    assert code == 0
    rows = json.loads(out.out)
    assert [r["attack"] for r in rows] == ["autoattack"] * 2
    counts = [json.loads(r["broken_by"]) for r in rows]
    assert [sum(c.values()) for c in counts] == [round(32 * (1 - r["robust_accuracy"])) for r in rows]


def test_cli_evaluate_warns_on_stderr(tmp_path: object, capsys: pytest.CaptureFixture[str],
                                      trained: tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]
                                      ) -> None:
    spec = ModelSpec("mlp", (1, 16, 16), 4, {"hidden": [32]})
    model = spec.build()
    with torch.no_grad():  # a constant model: nothing can fool it
        for p in model.parameters():
            p.zero_()
    save_checkpoint(f"{tmp_path}/m", model, spec, {"dataset": "synthetic"})
    code = main(["evaluate", f"{tmp_path}/m", "--attack", "fgsm", "--eps", "0.1",
                 "--n", "32", "--format", "csv"])
    out = capsys.readouterr()
    assert code == 0 and out.out.startswith("attack,norm,epsilon")
    assert "warning: pgd at ε=1" in out.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--eps", "0.1", "--attack", "fgsm", "--restarts", "2"], "--restarts"),
        (["--eps", "0.1", "--attack", "fgsm", "--steps", "2"], "--steps"),
        (["--eps", "0.1", "--attack", "pgd", "--queries", "2"], "--queries"),
        (["--eps", "x"], "comma-separated"),
        (["--eps", "0.1", "--attack", "cw"], "invalid choice"),
    ],
)
def test_cli_evaluate_errors_are_one_line(checkpoint: str, capsys: pytest.CaptureFixture[str],
                                          argv: list[str], message: str) -> None:
    assert main(["evaluate", checkpoint, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_evaluate_missing_checkpoint(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", f"{tmp_path}/nothing", "--eps", "0.1"]) == 2
    assert "not found" in capsys.readouterr().err
