"""Small hostile inputs must not buy unbounded memory or time: every size is checked against
what the file really holds, or against a documented cap, before anything is allocated."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from rankrobust.checkpoint import load_checkpoint, save_checkpoint
from rankrobust.cli.main import main
from rankrobust.data import load_dataset
from rankrobust.data.idx import read_idx
from rankrobust.errors import CheckpointError, ConfigError, DataError
from rankrobust.experiments import expand, study_from_dict
from rankrobust.experiments.study_file import load_study
from rankrobust.models import MAX_PARAMETERS, ModelSpec, build_model

SPEC = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [5]})
STUDY: dict[str, Any] = {"name": "t", "dataset": "synthetic", "model": "mlp",
                         "train": {"epochs": 1, "device": "cpu"}, "seeds": [0]}


def _checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(folder, SPEC.build(), SPEC, {"dataset": "synthetic"})


def _edit_sidecar(weights: Path, **model: Any) -> None:
    sidecar = weights.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["model"].update(model)
    sidecar.write_text(json.dumps(meta))


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("rankrobust: error: ") and err.count("\n") == 1, err
    return err


# -- model sizes -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "needle"),
    [({"options": {"hidden": [1_000_000, 1_000_000]}}, "parameters, more than"),
     ({"options": {"hidden": [10**9]}}, "hidden[0]"),
     ({"in_shape": [1, 100_000, 100_000]}, "more than"),
     ({"in_shape": [3, 1000, 1000]}, "do not match"),  # 3·10⁸ parameters: fits the cap, not the file
     ({"num_classes": 10**6}, "do not match")],
)
def test_sidecar_sizes_are_checked_before_the_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: dict[str, Any], needle: str
) -> None:
    path = _checkpoint(tmp_path)
    _edit_sidecar(path, **model)

    def no_build(self: ModelSpec) -> Any:
        raise AssertionError("the model was built before its sizes were checked")

    monkeypatch.setattr(ModelSpec, "build", no_build)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert needle in str(info.value)
    assert time.perf_counter() - start < 5


def test_parameter_cap_refuses_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match=f"more than the {MAX_PARAMETERS:,} allowed"):
        build_model("mlp", (1, 28, 28), 10, hidden=[600_000, 1_000])
    for hidden, needle in (("1000000000", "hidden[0]"), ("600000,1000", "parameters")):
        out = tmp_path / hidden.replace(",", "_")
        argv = ["train", "--dataset", "synthetic", "--model", "mlp", "--hidden", hidden,
                "--epochs", "1", "--out", str(out), "--no-progress"]
        assert main(argv) == 2
        assert needle in _one_error(capsys)
        assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("bad", [-1, 0, True, 2.5, "8", None, [3], 10**30])
def test_every_model_size_must_be_a_positive_bounded_integer(bad: Any) -> None:
    with pytest.raises(ConfigError):
        build_model("mlp", (1, 4, 4), 3, hidden=[bad])
    with pytest.raises(ConfigError):
        build_model("cnn-small", (1, 16, 16), 3, fc=bad)
    with pytest.raises(ConfigError):
        build_model("mlp", (1, 4, bad), 3)  # type: ignore[arg-type]


# -- special files ---------------------------------------------------------------------------
def _special(path: Path, kind: str) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    weights = _checkpoint(tmp_path / "ck")
    for target in (weights, weights.with_suffix(".json")):
        saved = target.read_bytes()
        _special(target, kind)
        with pytest.raises(CheckpointError, match="not a regular file"):
            load_checkpoint(weights)
        target.unlink()
        target.write_bytes(saved)
    data = tmp_path / "mnist"
    data.mkdir()
    _special(data / "train-images-idx3-ubyte", kind)
    (data / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match="not a regular file"):
        load_dataset("mnist", "train", tmp_path)
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    _special(cifar / "test_batch", kind)
    with pytest.raises(DataError, match="not a regular file"):
        load_dataset("cifar10", "test", cifar)
    _special(tmp_path / "study.yaml", kind)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_study(tmp_path / "study.yaml")


# -- IDX: header first, decompression capped by it ---------------------------------------------
def _gzip_stream(header: bytes, zeros: int) -> bytes:
    """gzip of ``header`` + ``zeros`` zero bytes, built in chunks (never ``zeros`` in memory)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [comp.compress(header)]
    chunk = bytes(1 << 20)
    for _ in range(zeros >> 20):
        out.append(comp.compress(chunk))
    out.append(comp.flush())
    return b"".join(out)


def test_gzip_idx_is_never_inflated_beyond_its_header(tmp_path: Path) -> None:
    huge = tmp_path / "huge.gz"  # header claims 5.5 M 28×28 images (4.3 GB)
    huge.write_bytes(_gzip_stream(struct.pack(">HBBIII", 0, 8, 3, 5_500_000, 28, 28), 4 << 20))
    small = tmp_path / "small.gz"  # header claims 10 images, the stream holds 64 MiB
    small.write_bytes(_gzip_stream(struct.pack(">HBBIII", 0, 8, 3, 10, 28, 28), 64 << 20))
    assert small.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(DataError, match="declares .* more than"):
            read_idx(huge)
        with pytest.raises(DataError, match="longer than the header"):
            read_idx(small)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    assert elapsed < 5


@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]),
    dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6), min_size=0, max_size=5),
    payload=st.integers(0, 300),
    gz=st.booleans(),
)
def test_any_idx_header_is_read_or_refused_in_one_line(
    tmp_path: Path, code: int, dims: list[int], payload: int, gz: bool
) -> None:
    raw = struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    raw += bytes(payload)
    path = tmp_path / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        array = read_idx(path)
    except DataError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert array.shape == tuple(dims) and array.nbytes == payload


# -- CIFAR pickles that pass the unpickler but rebuild huge arrays ----------------------------
class _HugeArray:
    def __reduce__(self) -> Any:
        from numpy.core.multiarray import _reconstruct  # what a numpy pickle names

        return (_reconstruct, (np.ndarray, (10**10,), b"b"))


def _write_batch(folder: Path, obj: Any) -> None:
    folder.mkdir(exist_ok=True)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


@pytest.mark.parametrize(
    ("obj", "needle"),
    [({b"data": _HugeArray(), b"labels": [1]}, "refusing to rebuild"),
     ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [list(range(3072))] * 10**6},
      "integer labels"),
     ({b"data": [[0] * 3072] * 4, b"labels": [1, 2, 3, 4]}, "uint8 (N, 3072) array"),
     ({b"data": np.zeros((4, 3072), np.float64), b"labels": [1, 2, 3, 4]}, "uint8")],
)
def test_cifar_pickles_cannot_expand(tmp_path: Path, obj: Any, needle: str) -> None:
    _write_batch(tmp_path, obj)
    assert (tmp_path / "test_batch").stat().st_size < 4 << 20  # a few MB that would rebuild GBs
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", tmp_path)
    assert needle in str(info.value)


# -- YAML and grids ----------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["name: bomb", "l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "aliases" in _one_error(capsys)
    assert time.perf_counter() - start < 5


def test_grid_size_is_capped_before_expanding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid: dict[str, list[Any]] = {f"train.{k}": list(range(1, 11)) for k in ("epochs", "batch_size")}
    grid |= {f"evaluation.{k}": list(range(1, 11)) for k in ("n", "batch_size")}
    grid |= {"train.lr": [0.1 * i for i in range(1, 11)], "train.momentum": [0.05 * i for i in range(10)]}
    big = {**STUDY, "grid": grid, "seeds": list(range(10))}  # 10⁷ runs
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(big))
    start = time.perf_counter()
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "10,000,000 runs, more than max_runs = 5,000" in _one_error(capsys)
    assert time.perf_counter() - start < 5
    small = {**STUDY, "grid": {"train.lr": [0.1, 0.2]}, "seeds": [0, 1]}
    with pytest.raises(ConfigError, match="4 runs, more than max_runs = 3"):
        expand(study_from_dict({**small, "max_runs": 3}))
    assert len(expand(study_from_dict({**small, "max_runs": 4}))) == 4
    for bad in (0, -1, "many", True, 2.5):
        with pytest.raises(ConfigError, match="max_runs"):
            study_from_dict({**small, "max_runs": bad})


# -- Ray -------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_unreachable_ray_address_fails_in_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "out"
    start = time.perf_counter()
    for address, needle in (("127.0.0.1:1", "cannot reach a Ray cluster"), ("nonsense", "HOST:PORT")):
        argv = ["sweep", str(path), "--out", str(out), "--executor", "ray", "--address", address]
        assert main(argv) == 2
        assert needle in _one_error(capsys)
    assert time.perf_counter() - start < 15
    assert not out.exists() or not any(out.iterdir())  # no database, no lock
