"""The method registry: declarations, strict parameters, the CLI and a plug-in method end to end."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from rankrobust.cli.main import main
from rankrobust.configuration import from_dict, to_dict
from rankrobust.errors import ConfigError
from rankrobust.experiments.store import ResultsStore
from rankrobust.experiments.study_config import study_from_dict
from rankrobust.experiments.sweep import run_sweep
from rankrobust.methods import (
    KINDS,
    METHODS,
    Penalty,
    StepInfo,
    TrainingMethod,
    method_from_config,
    register,
)
from rankrobust.report.build import build_report
from rankrobust.training import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "rankrobust"
PAPER_METHODS = ["natural", "fgsm-adv", "pgd-adv", "l1", "nuclear", "l1+nuclear", "product-l1"]


def test_every_method_declares_itself() -> None:
    assert set(PAPER_METHODS) | {"lowrank", "trades"} <= set(METHODS)
    labels = [cls.label for cls in METHODS.values()]
    colors = [cls.color for cls in METHODS.values()]
    assert len(set(labels)) == len(labels) and len(set(colors)) == len(colors)
    for name, cls in METHODS.items():
        assert cls.name == name and cls.kind in KINDS and cls.description
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(cls.swept) <= fields
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        default = cls()  # every parameter has a valid default
        assert method_from_config(default.to_config()) == default  # config round trip


def test_methods_are_frozen_and_validated_at_construction() -> None:
    l1 = method_from_config({"name": "l1", "lambda_l1": 0.01})
    with pytest.raises(dataclasses.FrozenInstanceError):
        l1.lambda_l1 = 2.0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="lambda_l1 must be a finite number > 0"):
        method_from_config({"name": "l1", "lambda_l1": float("nan")})
    with pytest.raises(ConfigError, match=r"train\.method\.lam\b.*takes: lambda_l1"):
        from_dict(TrainConfig, {"method": {"name": "l1", "lam": 1.0}}, "train")
    with pytest.raises(ConfigError, match="expected a number"):
        method_from_config({"name": "nuclear", "lambda_nuclear": "big"})
    with pytest.raises(ConfigError, match="did you mean 'pgd-adv'"):
        method_from_config("pgd_adv")


def test_registration_refuses_clashes_and_undeclared_methods() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register
        @dataclass(frozen=True)
        class Again(TrainingMethod):
            name = "l1"
            label = "again"
            kind = "regularized"

    with pytest.raises(ValueError, match="needs a name"):
        register(TrainingMethod)


def test_train_validates_the_method_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = METHODS["l1"]
    calls = []
    original = cls.__post_init__  # type: ignore[attr-defined]

    def counting(self: TrainingMethod) -> None:
        calls.append(1)
        original(self)

    monkeypatch.setattr(cls, "__post_init__", counting)
    code = main(["train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "8",
                 "--epochs", "1", "--method", "l1", "--set", "lambda_l1=1e-3",
                 "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 0 and len(calls) == 1


def test_legacy_flags_are_aliases_of_method_and_set(tmp_path: Path) -> None:
    def sidecar_method(*args: str) -> dict[str, object]:
        out = tmp_path / "x"
        assert main(["train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "8",
                     "--epochs", "1", "--out", str(out), "--no-progress", *args]) == 0
        return json.loads((out / "model.json").read_text())["train_config"]["method"]

    new = sidecar_method("--method", "l1+nuclear", "--set", "lambda_l1=1e-4",
                         "--set", "lambda_nuclear=0.5")
    old = sidecar_method("--regularizer", "l1+nuclear", "--lambda-l1", "1e-4",
                         "--lambda-nuclear", "0.5")
    assert new == old and new["name"] == "l1+nuclear" and new["lambda_nuclear"] == 0.5
    assert sidecar_method("--adversarial", "pgd", "--eps", "0.1", "--adv-steps", "1")["name"] == "pgd-adv"


def test_methods_command_lists_every_method_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == list(METHODS)
    l1n = next(m for m in listed if m["name"] == "l1+nuclear")
    params = {p["name"]: p["default"] for p in l1n["params"]}
    assert params["lambda_l1"] == 1e-4 and params["nuclear_mode"] == "proximal"
    assert l1n["swept"] == ["lambda_nuclear", "lambda_l1"] and l1n["description"]
    assert main(["methods"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in METHODS) and "lambda_l1 = 0.0001" in table


def test_combined_regularizer_is_spelled_only_in_its_module() -> None:
    hits = sorted(p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
                  if '"l1+nuclear"' in p.read_text(encoding="utf-8"))
    assert hits == ["methods/l1_nuclear.py"]


def test_cli_help_does_not_import_torch() -> None:
    code = ("import sys; from rankrobust.cli.main import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- a method defined here, registered here, used everywhere ------------------------------------


@dataclass(frozen=True)
class BiasDecay(TrainingMethod):
    """λ·Σ‖b‖² over every bias: a throwaway method that lives only in this test file."""

    name = "test-bias-decay"
    label = "bias decay (test)"
    color = "#123456"
    kind = "regularized"
    description = "test-only: squared ℓ2 penalty on biases"
    swept = ("lam",)

    lam: float = 0.1

    def __post_init__(self) -> None:
        if not self.lam > 0:
            raise ConfigError(f"lam must be > 0, got {self.lam}")

    def regularize(self, model: nn.Module) -> Penalty:
        biases = [m.bias for m in model.modules()
                  if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None]

        def term(info: StepInfo) -> torch.Tensor:
            return self.lam * sum(b.pow(2).sum() for b in biases)  # type: ignore[return-value]

        return Penalty({"bias": term})


@pytest.fixture
def bias_decay() -> Iterator[type[TrainingMethod]]:
    register(BiasDecay)
    try:
        yield BiasDecay
    finally:
        METHODS.pop(BiasDecay.name, None)


def test_a_method_defined_in_a_test_trains_and_reaches_the_report(
    tmp_path: Path, bias_decay: type[TrainingMethod]
) -> None:
    study = study_from_dict({
        "name": "plugin", "dataset": "synthetic", "model": "mlp",
        "model_options": {"hidden": [8]},
        "train": {"epochs": 2, "device": "cpu",
                  "method": {"name": "test-bias-decay", "lam": 0.5}},
        "evaluation": {"n": 32, "batch_size": 32,
                       "attacks": [{"attack": "fgsm", "epsilons": [0.0, 0.1]}]},
    })
    summary = run_sweep(study, out=tmp_path, workers=1, progress=False)
    assert summary.exit_code == 0
    with ResultsStore(tmp_path / "results.sqlite") as store:
        run = store.runs().iloc[0]
        assert (run.method, json.loads(run.method_params)) == ("test-bias-decay", {"lam": 0.5})
        history = store.epoch_metrics()
        assert (history["penalty_bias"] > 0).all()  # the term was logged under its name
        assert store.integrity_check() == "ok"
    report = build_report(tmp_path / "results.sqlite", tmp_path / "report")
    md = report.with_suffix(".md").read_text()
    assert "bias decay (test)" in md and "lam=0.5" in md


def test_store_integrity_check_catches_a_method_column_that_disagrees(
    tmp_path: Path, bias_decay: type[TrainingMethod]
) -> None:
    study = study_from_dict({"name": "s", "dataset": "synthetic", "model": "mlp",
                             "train": {"method": {"name": "test-bias-decay"}}})
    from rankrobust.experiments.grid import expand

    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.register(expand(study))
        assert store.integrity_check() == "ok"
        store._con.execute("UPDATE runs SET method_params = '{\"lam\": 9}'")
        assert "disagree" in store.integrity_check()
    assert to_dict(BiasDecay(0.25)) == {"name": "test-bias-decay", "lam": 0.25}
