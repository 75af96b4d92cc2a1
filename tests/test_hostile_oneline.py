"""Bad input is one line on stderr and exit code 2, never a traceback: negative or infinite
sizes, deep nesting, huge numbers, wrong image shapes and NaN weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from rankrobust.checkpoint import load_checkpoint, save_checkpoint
from rankrobust.cli.main import main
from rankrobust.data import load_dataset
from rankrobust.data.idx import write_idx
from rankrobust.errors import CheckpointError, DataError, NonFiniteError
from rankrobust.models import ModelSpec
from rankrobust.structure import analyze

SPEC = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [5]})


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "ck", SPEC.build(), SPEC, {"dataset": "synthetic"})


def _analyze_error(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["analyze", str(path), "--format", "csv"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("rankrobust: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.mark.parametrize(
    ("text", "needles"),
    [('"options": {"hidden": [-5]}', ["hidden[0]", "-5"]),
     ('"options": {"hidden": [5.5]}', ["hidden[0]"]),
     ('"num_classes": Infinity', ["Infinity"]),
     ('"num_classes": NaN', ["NaN"]),
     ('"num_classes": 1e999', ["out of range"]),
     ('"num_classes": ' + "9" * 5000, ["out of range"]),
     ('"in_shape": [1, 4, -4]', ["in_shape"]),
     ('"in_shape": "1,4,4"', ["in_shape"]),
     ('"options": [1, 2]', ["options"])],
)
def test_hostile_sidecar_values_are_one_line(
    checkpoint: Path, capsys: pytest.CaptureFixture[str], text: str, needles: list[str]
) -> None:
    sidecar = checkpoint.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    key = text.split('"')[1]
    meta["model"][key] = "__HERE__"
    sidecar.write_text(json.dumps(meta).replace(f'"{key}": "__HERE__"', text))
    err = _analyze_error(checkpoint, capsys)
    assert str(sidecar) in err
    for needle in needles:
        assert needle in err


def test_deeply_nested_sidecar_is_one_line(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sidecar = checkpoint.with_suffix(".json")
    sidecar.write_text('{"format": "rankrobust-checkpoint", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "nested too deeply" in _analyze_error(checkpoint, capsys)


def test_deeply_nested_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("train: " + "[" * 100_000 + "]" * 100_000 + "\n",
                 "".join(" " * i + f"k{i}:\n" for i in range(200)),
                 "train: " + "{a: " * 50 + "1" + "}" * 50 + "\n"):
        path = tmp_path / "deep.yaml"
        path.write_text(text)
        assert main(["sweep", str(path), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rankrobust: error: ") and err.count("\n") == 1, err
        assert "nest" in err and str(path) in err


def test_nan_weights_are_refused_naming_the_layer(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = SPEC.build()
    with torch.no_grad():
        dict(model.named_parameters())["layers.2.weight"][0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="layers.2"):
        analyze(model)
    save_checkpoint(checkpoint, model, SPEC)
    err = _analyze_error(checkpoint, capsys)
    assert "layers.2.weight" in err and "NaN or infinite" in err
    with pytest.raises(CheckpointError, match="layers.2.weight"):
        load_checkpoint(checkpoint)


def _mnist_folder(root: Path, size: int, n: int = 6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return root


def test_images_of_another_size_are_refused_at_load(tmp_path: Path) -> None:
    _mnist_folder(tmp_path / "mnist", 16)
    with pytest.raises(DataError, match="16x16; this dataset's are 28x28") as info:
        load_dataset("mnist", "train", tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    x, _ = load_dataset("synthetic", "test")
    assert tuple(x.shape[1:]) == (1, 16, 16)


# a JSON value of a few levels: what a hostile sidecar might put in a model field
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["name", "in_shape", "num_classes", "options", "hidden", "mean", "version"]),
       value=_json)
def test_any_sidecar_value_loads_or_is_one_checkpoint_error(
    checkpoint: Path, field: str, value: Any
) -> None:
    sidecar = checkpoint.with_suffix(".json")
    original = checkpoint.with_suffix(".orig")  # the fixture is shared by all examples
    if not original.exists():
        original.write_text(sidecar.read_text())
    meta = json.loads(original.read_text())
    if field == "version":
        meta["version"] = value
    elif field in ("hidden", "mean"):
        meta["model"]["options"][field] = value
    else:
        meta["model"][field] = value
    sidecar.write_text(json.dumps(meta))
    try:
        ckpt = load_checkpoint(checkpoint)
    except CheckpointError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
    else:  # accepted: the model is the saved one, weight for weight, rebuilt as the sidecar says
        torch.manual_seed(0)
        saved = SPEC.build().eval()  # the fixture's model
        want, got = saved.state_dict(), ckpt.model.state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want), field
        x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
        out = ckpt.model(x)
        assert out.shape == (2, 3) and bool(torch.isfinite(out).all())
        if ckpt.spec == SPEC:  # the hostile value changed nothing that matters: same answers
            assert torch.equal(out, saved(x))
