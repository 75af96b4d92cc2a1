"""Any PyTorch model: a factory ``module:function`` and a weights file, through the library and the
CLI. The factories below are imported by module name (``test_external_models:make_net``); a
hostile torch.save file is refused without its payload ever running."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from rankrobust.cli.main import main
from rankrobust.data import load_dataset
from rankrobust.errors import CheckpointError
from rankrobust.external import load_external_model, read_state_dict
from rankrobust.interventions import MEASURES, measure
from rankrobust.robustness import fooling_ratio_curve
from rankrobust.structure import analyze

HERE = Path(__file__).resolve().parent
FACTORY = "test_external_models:make_net"


class TinyNet(nn.Module):
    """x (B, 1, 16, 16) → conv 3×3 stride 2 (4, 7, 7) → ReLU → Linear → logits (B, K)."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2)
        self.fc = nn.Linear(4 * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make_net(num_classes: int = 4) -> nn.Module:
    return TinyNet(num_classes)


def make_fixed() -> nn.Module:
    return TinyNet(4)


def not_a_module() -> int:
    return 3


NOT_CALLABLE = 3


class Payload:
    """Unpickling this calls open(path, "w"): a file appears if the pickle is ever executed."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    if "test_external_models" not in sys.modules:  # pytest's import mode may name this module otherwise
        monkeypatch.setitem(sys.modules, "test_external_models", sys.modules[__name__])


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return make_net(4).eval()


@pytest.fixture(scope="module")
def weights(net: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("external")
    paths = {"safetensors": folder / "net.safetensors", "pt": folder / "net.pt",
             "nested": folder / "nested.pt", "renamed": folder / "renamed.safetensors",
             "three": folder / "three.safetensors", "text": folder / "notes.txt",
             "nan": folder / "nan.safetensors", "missing": folder / "missing.safetensors",
             "folder": folder}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, paths["safetensors"])
    torch.save(net.state_dict(), paths["pt"])
    torch.save({"weights": net.state_dict(), "epoch": 3}, paths["nested"])
    save_file({("body.conv.weight" if k == "conv.weight" else k): v for k, v in state.items()},
              paths["renamed"])
    save_file({k: v.contiguous() for k, v in make_net(3).state_dict().items()}, paths["three"])
    paths["text"].write_text("not weights\n")
    save_file({**state, "fc.bias": torch.full_like(state["fc.bias"], float("nan"))}, paths["nan"])
    return paths


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_library_load_matches_the_saved_model(net: nn.Module, weights: dict[str, Path]) -> None:
    model = load_external_model(FACTORY, weights["safetensors"], in_shape=(1, 16, 16), num_classes=4)
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 net.state_dict().values(), strict=True))
    three = load_external_model(FACTORY, weights["three"], in_shape=(1, 16, 16), num_classes=3)
    assert three.fc.out_features == 3  # the factory was called with num_classes=3


@pytest.mark.parametrize("kind", ["safetensors", "pt"])
def test_cli_analyze_of_a_factory_model_matches_the_library(
    net: nn.Module, weights: dict[str, Path], capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    extra = ["--allow-torch-load"] if kind == "pt" else []
    out = _run(["analyze", str(weights[kind]), "--model-factory", FACTORY, "--format", "json", *extra],
               capsys)
    expected = json.loads(json.dumps(analyze(net).to_dict(orient="records"), default=str))
    assert json.loads(out) == expected
    assert [row["layer"] for row in expected] == ["conv", "fc"]


def test_torch_save_file_needs_the_explicit_flag(weights: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(["analyze", str(weights["pt"]), "--model-factory", FACTORY], capsys)
    assert "torch.save zip archive" in err and "--allow-torch-load" in err


@pytest.mark.parametrize("raw", [False, True], ids=["torch-save", "raw-pickle"])
def test_hostile_pickle_is_refused_without_running_even_with_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bool
) -> None:
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    if raw:
        hostile.write_bytes(pickle.dumps({"conv.weight": Payload(marker)}, protocol=2))
    else:
        torch.save({"conv.weight": Payload(marker)}, hostile)
    err = _fails(["analyze", str(hostile), "--model-factory", FACTORY, "--allow-torch-load"], capsys)
    assert "refused" in err and "weights_only=True" in err, err
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(hostile, allow_torch_load=True)
    assert not marker.exists()
    # control: an unrestricted load runs the payload
    pickle.loads(hostile.read_bytes()) if raw else torch.load(hostile, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    ("kind", "extra", "needle"),
    [
        ("nested", ["--allow-torch-load"], "not a flat dict of tensors (entry 'weights' is of type OrderedDict), nor a checkpoint"),
        ("renamed", [], "do not match the model of test_external_models:make_net: missing key 'conv.weight'"),
        ("three", ["--num-classes", "4"], "'fc.weight' has shape (3, 196) in the file but (4, 196) in the model"),
        ("text", [], "not a safetensors checkpoint"),
        ("nan", [], "tensor 'fc.bias' holds NaN or infinite values"),
        ("missing", [], "weights file not found"),
        ("folder", [], "not a regular file"),
        ("safetensors", ["--input-shape", "3,16,16"], "--input-shape 3,16,16: the model of"),
        ("safetensors", ["--input-shape", "1,16,16", "--num-classes", "3"], "has shape (4, 196) in the file"),
        ("safetensors", ["--input-shape", "1,16"], "expected C,H,W"),
    ],
)
def test_bad_weights_or_shapes_are_one_line(
    weights: dict[str, Path], capsys: pytest.CaptureFixture[str], kind: str, extra: list[str], needle: str
) -> None:
    err = _fails(["analyze", str(weights[kind]), "--model-factory", FACTORY, *extra], capsys)
    assert needle in err, err


def test_probe_checks_the_number_of_classes(weights: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(["analyze", str(weights["safetensors"]), "--model-factory", "test_external_models:make_fixed",
                  "--input-shape", "1,16,16", "--num-classes", "5"], capsys)
    assert "gives 4 logits but --num-classes is 5" in err


@pytest.mark.parametrize(
    ("factory", "needle"),
    [
        ("no_such_module_zz:make", "cannot import module 'no_such_module_zz'"),
        ("test_external_models:missing", "has no attribute 'missing'"),
        ("test_external_models:not_a_module", "returned an object of type int, not a torch.nn.Module"),
        ("test_external_models:NOT_CALLABLE", "'NOT_CALLABLE' (of type int) is not callable"),
        ("make_net", "expected 'module:function'"),
        ("test_external_models:TinyNet.forward", "cannot be called as TinyNet.forward() (missing a required argument: 'self')"),
    ],
)
def test_bad_factories_are_one_line(
    weights: dict[str, Path], capsys: pytest.CaptureFixture[str], factory: str, needle: str
) -> None:
    err = _fails(["analyze", str(weights["safetensors"]), "--model-factory", factory,
                  "--num-classes", "4"], capsys)
    assert needle in err, err


def test_intervene_on_a_factory_model(
    net: nn.Module, weights: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base_args = ["intervene", str(weights["safetensors"]), "--model-factory", FACTORY, "--svd-keep",
                 "0.5,1", "--eps", "0.1", "--n", "16", "--steps", "2", "--format", "json", "--device", "cpu"]
    err = _fails(base_args, capsys)
    assert "a --model-factory model has no stored dataset; pass --dataset" in err
    err = _fails([*base_args, "--dataset", "synthetic", "--num-classes", "10"], capsys)
    assert "--num-classes 10 does not match dataset synthetic (4 classes)" in err
    rows = json.loads(_run([*base_args, "--dataset", "synthetic"], capsys))
    assert [r["keep"] for r in rows] == [0.5, 1.0]
    base = measure(net, load_dataset("synthetic", "test"), attack="pgd", eps=0.1, n=16, steps=2, seed=0)
    assert {c: rows[1][c] for c in MEASURES} == base


def test_evaluate_on_a_factory_model(
    net: nn.Module, weights: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base_args = ["evaluate", str(weights["safetensors"]), "--model-factory", FACTORY, "--eps",
                 "0,0.1", "--attack", "fgsm", "--n", "16", "--format", "json", "--device", "cpu",
                 "--no-sanity"]
    err = _fails(base_args, capsys)
    assert "a --model-factory model has no stored dataset; pass --dataset" in err
    rows = json.loads(_run([*base_args, "--dataset", "synthetic"], capsys))
    x, y = load_dataset("synthetic", "test")
    expected = fooling_ratio_curve(net, (x, y), "fgsm", [0.0, 0.1], n=16, seed=0)
    assert [r["robust_accuracy"] for r in rows] == pytest.approx(list(expected["robust_accuracy"]))
