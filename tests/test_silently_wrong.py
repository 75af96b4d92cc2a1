"""Input that ran to exit 0 with a wrong result is refused in one line (issue 22, section 1):
``--set`` keys that override a dedicated flag, methods that end up changing nothing, and
checkpoint tensors of a dtype that a float layer would silently cast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rankrobust.cli.main import main
from rankrobust.errors import CheckpointError, ConfigError
from rankrobust.experiments import expand, study_from_dict
from rankrobust.external import load_external_model
from rankrobust.methods import METHODS, method_from_config
from rankrobust.models import build_model

HERE = Path(__file__).parent
FACTORY = "test_silently_wrong:linear"
TRAIN = ["train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "8", "--epochs", "1",
         "--no-progress"]


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))  # the factory below, for --model-factory


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rankrobust: error: "), err
    return lines[0]


# -- --set ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["--method", "pgd-adv", "--set", "name=natural"],
    ["--set", "name=pgd-adv"],
    ["--regularizer", "l1", "--set", "name=nuclear"],
    ["--adversarial", "fgsm", "--set", " name =natural"],
])
def test_set_name_is_refused(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*TRAIN, "--out", str(tmp_path / "out"), *argv]) == 2
    line = _one_error(capsys)
    assert "--set name" in line and "--method" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("key", "flag"), [
    ("lr", "--lr"), ("epochs", "--epochs"), ("seed", "--seed"), ("batch_size", "--batch-size"),
    ("method", "--method"), ("model", "--model"), ("dataset", "--dataset"), ("out", "--out"),
])
def test_set_of_a_flag_setting_is_refused(key: str, flag: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A --set key that has its own flag (and is no parameter of the method) never wins over
    (or silently beside) that flag."""
    assert main([*TRAIN, "--out", str(tmp_path / "out"), "--method", "l1", "--set", f"{key}=3"]) == 2
    line = _one_error(capsys)
    assert f"--set {key}" in line and flag in line


def test_set_alias_conflicts_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*TRAIN, "--out", str(tmp_path / "o"), "--method", "pgd-adv", "--adv-steps", "2",
                 "--set", "steps=3"]) == 2
    assert "both given" in _one_error(capsys)


def test_set_values_go_through_the_hardened_yaml_reader(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A --set value is a YAML scalar read by the one hardened loader; anything else (an alias,
    a tag, a mapping) stays the literal text, which the method's typed parameter refuses."""
    for value in ("*x", "!!python/object/apply:os.system ['true']", "{a: 1}", "[1, 2]"):
        assert main([*TRAIN, "--out", str(tmp_path / "o"), "--method", "l1", "--set",
                     f"lambda_l1={value}"]) == 2
        assert "lambda_l1" in _one_error(capsys)


# -- methods that change nothing -------------------------------------------------------------------
MLP = build_model("mlp", (1, 16, 16), 4, hidden=[8, 6])  # layers.0, layers.2, layers.4 (output)


@pytest.mark.parametrize("config", [
    {"name": "lowrank", "rank": 1, "layers": "layers.4"},  # only the output layer: skipped
    {"name": "lowrank", "rank": 1, "layers": "^layers\\.4$"},
    {"name": "lowrank", "rank": 100},  # every layer has r ≥ min(m, n)
    {"name": "lowrank", "rank_ratio": 1.0},
    {"name": "lowrank", "rank": 1, "layers": "nothing-matches"},
    {"name": "l1", "layers": "nothing-matches"},
    {"name": "nuclear", "layers": "conv"},  # an mlp has no conv layer
    {"name": "l1+nuclear", "layers": "features"},
    {"name": "product-l1", "layers": "zzz"},
])
def test_a_layer_selection_that_selects_nothing_is_an_error(config: dict[str, object]) -> None:
    method = method_from_config(config)
    with pytest.raises(ConfigError, match="change nothing"):
        method.check_model(MLP)


def test_every_method_with_a_layer_selection_is_checked() -> None:
    """The rule is the base class's: every registered method with a ``layers`` parameter refuses
    a pattern that selects nothing (a new method inherits it)."""
    with_layers = [name for name, cls in METHODS.items() if "layers" in cls.__dataclass_fields__]
    assert len(with_layers) >= 5
    for name in with_layers:
        params = {"layers": "matches-no-layer"}
        with pytest.raises(ConfigError, match="change nothing"):
            method_from_config({"name": name, **params}).check_model(MLP)
        method_from_config({"name": name}).check_model(MLP)  # "all" is fine


@pytest.mark.parametrize("config", [{"name": "fgsm-adv", "alpha": 1.0}, {"name": "trades", "beta": 0.0}])
def test_parameters_that_make_a_method_natural_are_refused(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="change nothing|> 0"):
        method_from_config(config)


def test_lowrank_that_factorizes_nothing_fails_in_train_and_in_a_study(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main([*TRAIN, "--out", str(out), "--method", "lowrank", "--set", "rank=1",
                 "--set", "layers=layers.2"]) == 2  # --hidden 8: layers.2 is the output layer
    assert "change nothing" in _one_error(capsys)
    assert not (out / "model.safetensors").exists()
    study = {"name": "s", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
             "train": {"method": {"name": "lowrank", "rank": 1, "layers": "layers.2"}}}
    with pytest.raises(ConfigError, match=r"train\.method: .*change nothing"):
        expand(study_from_dict(study))
    assert len(expand(study_from_dict({**study, "train": {"method": {"name": "lowrank", "rank": 1}}}))) == 1


# -- checkpoint dtypes -----------------------------------------------------------------------------
def _factory_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in torch.nn.Linear(3, 2).state_dict().items()}


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128, torch.int64, torch.int32,
                                   torch.int8, torch.uint8, torch.bool])
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_only_real_floating_dtypes_load(dtype: torch.dtype, fmt: str, tmp_path: Path) -> None:
    state = _factory_state()
    state["weight"] = state["weight"].to(dtype)
    path = tmp_path / f"w.{fmt}"
    if fmt == "pt":
        torch.save(state, path)
    else:
        try:
            save_file(state, str(path))
        except (ValueError, TypeError, KeyError):  # a dtype this safetensors cannot write
            pytest.skip(f"safetensors cannot store {dtype}")
    with pytest.raises(CheckpointError, match=r"'weight'.*only real floating-point"):
        load_external_model(FACTORY, path, allow_torch_load=True)


def test_real_floating_dtypes_still_load(tmp_path: Path) -> None:
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        state = {k: v.to(dtype) for k, v in _factory_state().items()}
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
        model = load_external_model(FACTORY, path)
        torch.testing.assert_close(model.weight, state["weight"].float())


def test_complex_weights_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _factory_state()
    state["bias"] = state["bias"].to(torch.complex64) * (1 + 1j)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    assert main(["analyze", str(path), "--model-factory", FACTORY,
                 "--allow-torch-load"]) == 2
    line = _one_error(capsys)
    assert "'bias'" in line and "complex64" in line


def linear() -> torch.nn.Module:
    """The factory of the dtype tests: Linear(3, 2)."""
    return torch.nn.Linear(3, 2)
