"""Input that used to give silently wrong results is refused: non-finite or out-of-range
pixels, float labels, empty splits, duplicate YAML keys, unknown sidecar versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples
from rankrobust.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from rankrobust.cli.main import main
from rankrobust.data import load_dataset
from rankrobust.data.idx import write_idx
from rankrobust.data.registry import check_arrays
from rankrobust.errors import CheckpointError, ConfigError, DataError
from rankrobust.experiments.study_file import parse_study_yaml
from rankrobust.models import ModelSpec


def _mnist(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return folder


LABELS = np.arange(4, dtype=np.uint8)


@pytest.mark.parametrize(
    ("images", "needle"),
    [(np.full((4, 28, 28), np.nan, np.float32), "NaN or infinite"),
     (np.full((4, 28, 28), np.inf, np.float64), "NaN or infinite"),
     (np.full((4, 28, 28), 1e6, np.float32), "must lie in [0, 1]"),
     (np.full((4, 28, 28), -0.5, np.float32), "must lie in [0, 1]"),
     (np.full((4, 28, 28), 300, np.int16), "must lie in 0..255"),
     (np.full((4, 28, 28), -3, np.int8), "must lie in 0..255")],
)
def test_out_of_range_pixels_are_refused_not_cast(tmp_path: Path, images: np.ndarray, needle: str) -> None:
    _mnist(tmp_path, images, LABELS)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", tmp_path)
    assert needle in str(info.value) and str(tmp_path) in str(info.value)


def test_valid_float_and_wide_integer_pixels_are_kept_exactly(tmp_path: Path) -> None:
    floats = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    _mnist(tmp_path / "f", floats, LABELS)
    x, y = load_dataset("mnist", "test", tmp_path / "f")
    assert torch.equal(x[:, 0], torch.from_numpy(floats)) and y.tolist() == [0, 1, 2, 3]
    wide = np.full((4, 28, 28), 255, np.int32)
    _mnist(tmp_path / "i", wide, LABELS)
    x, _ = load_dataset("mnist", "test", tmp_path / "i")
    assert float(x.min()) == 1.0


@pytest.mark.parametrize(
    ("labels", "needle"),
    [(np.array([0.0, 1.5, 2.0, 3.0], np.float32), "expected integers"),
     (np.array([0, 1, 2, 10], np.uint8), "labels must be integers in 0..9")],
)
def test_bad_labels_are_refused(tmp_path: Path, labels: np.ndarray, needle: str) -> None:
    _mnist(tmp_path, np.zeros((4, 28, 28), np.uint8), labels)
    with pytest.raises(DataError, match=needle.replace(".", r"\.")):
        load_dataset("mnist", "train", tmp_path)


@pytest.mark.parametrize(("pixel", "needle"), [(300, "0..300"), (-1, "-1..0"), ("0.5", "cannot parse")])
def test_mnist5k_csv_pixels_outside_0_255_are_refused_not_wrapped(
    tmp_path: Path, pixel: Any, needle: str
) -> None:
    import gzip

    from rankrobust.data.mnist5k import read_mnist5k_csv

    row = [0] * 784 + [3]
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(",".join(map(str, row)) + "\n")
        fh.write(",".join(map(str, [pixel, *row[1:]])) + "\n")
    with pytest.raises(DataError, match="mnist5k") as info:
        read_mnist5k_csv(path)
    assert needle in str(info.value) and "\n" not in str(info.value)
    with gzip.open(path, "wt") as fh:
        fh.write(",".join(map(str, [255, *row[1:]])) + "\n")
    x, y = read_mnist5k_csv(path)
    assert int(x[0, 0, 0, 0]) == 255 and y.tolist() == [3]


def test_empty_split_is_refused_at_load(tmp_path: Path) -> None:
    _mnist(tmp_path, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="empty"):
        load_dataset("mnist", "test", tmp_path)


@settings(max_examples=examples(80), deadline=None)
@given(values=st.lists(st.floats(width=32), min_size=1, max_size=6),
       labels=st.lists(st.integers(-2, 12), min_size=1, max_size=6))
def test_check_arrays_accepts_only_clean_data(values: list[float], labels: list[int]) -> None:
    n = min(len(values), len(labels))
    x = np.array(values[:n], np.float32)[:, None, None, None] * np.ones((1, 1, 16, 16), np.float32)
    y = np.array(labels[:n])
    try:
        cx, cy = check_arrays("synthetic", "test", x, y)
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert np.isfinite(cx).all() and cx.min() >= 0 and cx.max() <= 1
        assert cy.min() >= 0 and cy.max() <= 3 and np.array_equal(cx, x)


@pytest.mark.parametrize(
    "text",
    ["name: a\nseeds: [0]\nseeds: [1]\n",
     "name: a\ntrain:\n  lr: 0.1\n  lr: 0.2\n",
     "name: a\nvariants:\n  - {name: v, name: w}\n"],
)
def test_duplicate_yaml_keys_are_refused(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="duplicate key"):
        parse_study_yaml(text, "s.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "duplicate key" in err and "line" in err and err.count("\n") == 1


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, "1", 1.0, True, None])
def test_unknown_sidecar_version_is_refused(tmp_path: Path, version: Any) -> None:
    spec = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [5]})
    path = save_checkpoint(tmp_path, spec.build(), spec)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["version"] = version
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown checkpoint format version"):
        load_checkpoint(path)
    del meta["version"]
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown checkpoint format version None"):
        load_checkpoint(path)


def test_attacks_refuse_inputs_and_models_that_would_give_silently_wrong_numbers() -> None:
    import torch
    from torch import nn

    from rankrobust.attacks import fgsm, pgd
    from rankrobust.errors import ConfigError as _ConfigError

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    assert fgsm(model, x, y, [0.1]).success.shape == (1, 5)
    with pytest.raises(_ConfigError, match="bounds"):  # raw 0–255 pixels
        pgd(model, x * 255, y, [0.1], steps=1)
    with pytest.raises(_ConfigError, match="NaN"):
        fgsm(model, x.masked_fill(x > 0.9, float("nan")), y, [0.1])
    with pytest.raises(_ConfigError, match="labels must be integers"):
        fgsm(model, x, y.float(), [0.1])
    broken = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        broken[1].weight[0, 0] = float("nan")
    with pytest.raises(_ConfigError, match="NaN or infinite"):  # not "perfectly robust"
        fgsm(broken, x, y, [0.1])


def test_evaluate_json_has_no_bare_nan() -> None:
    import io
    import json as _json

    import pandas as _pd

    from rankrobust.cli.common import emit_frame

    out = io.StringIO()
    emit_frame(_pd.DataFrame({"a": [1.0, float("nan")], "b": ["x", "y"]}), "json", out)
    assert _json.loads(out.getvalue()) == [{"a": 1.0, "b": "x"}, {"a": None, "b": "y"}]


# -- weights that are finite in the file but not in the model ---------------------------------
def _f64_checkpoint(tmp_path: Path, edit: Any) -> Path:
    from safetensors.torch import load_file, save_file

    spec = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [5]})
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "ck", spec.build(), spec, {"dataset": "synthetic"})
    tensors = {k: v.double() for k, v in load_file(path).items()}  # F64 is a valid float type
    edit(tensors)
    save_file(tensors, path, metadata={"format": "rankrobust-checkpoint"})
    return path


def test_float64_weights_that_overflow_float32_are_refused(tmp_path: Path) -> None:
    def huge(t: dict[str, torch.Tensor]) -> None:
        t["layers.0.weight"][0, 0] = 1e300  # finite in the file, inf in the float32 model

    with pytest.raises(CheckpointError, match=r"'layers.0.weight' is NaN or infinite in the model's float32"):
        load_checkpoint(_f64_checkpoint(tmp_path, huge))
    assert load_checkpoint(_f64_checkpoint(tmp_path, lambda t: None)).model(torch.zeros(1, 1, 4, 4)).shape == (1, 3)


@pytest.mark.parametrize("std", [0.0, -1.0, 1e-30, 0.3001])
def test_normalization_buffers_must_match_the_spec(tmp_path: Path, std: float) -> None:
    def edit(t: dict[str, torch.Tensor]) -> None:
        t["normalize.std"].fill_(std)  # would divide every input by it

    with pytest.raises(CheckpointError, match=r"buffer 'normalize.std' differs from the model spec"):
        load_checkpoint(_f64_checkpoint(tmp_path, edit))


def test_external_float64_weights_that_overflow_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import save_file

    from rankrobust.external import load_external_model

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from test_external_models import make_net

    state = {k: v.double() for k, v in make_net().state_dict().items()}
    state["fc.weight"][0, 0] = -1e300
    save_file(state, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match=r"'fc.weight' is NaN or infinite in the model's float32"):
        load_external_model("test_external_models:make_net", tmp_path / "w.safetensors")
