"""Checkpoints: safetensors + JSON round trip; pickles and garbage refused without running."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from rankrobust.checkpoint import load_checkpoint, save_checkpoint
from rankrobust.errors import CheckpointError
from rankrobust.models import ModelSpec

MARKER = "rankrobust-test-pwned-marker"


def _saved(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    spec = ModelSpec("lenet5", (1, 16, 16), 4, {"mean": [0.5], "std": [0.3]})
    model = spec.build()
    return model, save_checkpoint(tmp_path / "run", model, spec, {"dataset": "synthetic"})


def test_roundtrip_all_entry_points(tmp_path: Path) -> None:
    model, path = _saved(tmp_path)
    x = torch.rand(2, 1, 16, 16)
    for entry in (path, path.with_suffix(".json"), path.parent):
        ck = load_checkpoint(entry)
        assert ck.meta["dataset"] == "synthetic"
        assert torch.equal(ck.model(x), model.eval()(x))
        assert not ck.model.training


class Hostile:
    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path("/tmp") / MARKER, "pwned"))  # type: ignore[return-value]


def test_hostile_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = Path("/tmp") / MARKER
    marker.unlink(missing_ok=True)
    for name, dump in (
        ("evil.pt", lambda p: torch.save({"x": Hostile()}, p)),
        ("evil.pkl", lambda p: p.write_bytes(pickle.dumps(Hostile()))),
        ("evil.safetensors", lambda p: p.write_bytes(pickle.dumps(Hostile()))),
    ):
        path = tmp_path / name
        dump(path)
        with pytest.raises(CheckpointError, match="refusing to unpickle"):
            load_checkpoint(path)
    assert not marker.exists()


def test_garbage_and_truncated_files(tmp_path: Path) -> None:
    _, path = _saved(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt|not a safetensors"):
        load_checkpoint(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_sidecar_problems(tmp_path: Path) -> None:
    _, path = _saved(tmp_path)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["model"]["options"]["widths"] = [3]
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="cannot rebuild"):
        load_checkpoint(path)
    meta["model"] = {"name": "mlp", "in_shape": [1, 16, 16], "num_classes": 4, "options": {}}
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)
    sidecar.write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        load_checkpoint(path)
    sidecar.unlink()
    with pytest.raises(CheckpointError, match="sidecar missing"):
        load_checkpoint(path)


def test_no_temporary_files_left(tmp_path: Path) -> None:
    _, path = _saved(tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.safetensors"]
