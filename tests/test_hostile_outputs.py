"""No half-done outputs: every target path is checked before the first byte is written, files
get the umask's mode, and an empty study file is refused instead of running defaults."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rankrobust.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from rankrobust.cli.main import main
from rankrobust.errors import CheckpointError
from rankrobust.models import ModelSpec

SPEC = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [5]})


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_bad_targets_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    model = SPEC.build()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "net.json").mkdir()  # the sidecar's target is a folder
    before = _files(tmp_path)
    with pytest.raises(CheckpointError, match="a-file is not a folder"):
        save_checkpoint(tmp_path / "a-file" / "sub" / "net.safetensors", model, SPEC)
    with pytest.raises(CheckpointError, match="net.json: it is a folder"):
        save_checkpoint(tmp_path / "net.safetensors", model, SPEC)
    with pytest.raises(CheckpointError, match="plain file name"):
        save_checkpoint(tmp_path / "ok", model, SPEC, extra_files={"../escape.json": b"{}"})
    assert _files(tmp_path) == before


def test_extra_files_are_written_with_the_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "run", SPEC.build(), SPEC, extra_files={"history.json": b"[]"})
    assert _files(tmp_path / "run") == ["history.json", "model.json", "model.safetensors"]
    assert load_checkpoint(path).spec == SPEC


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rankrobust.checkpoint.os.replace", broken)
    with pytest.raises(CheckpointError, match="No space left"):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert _files(tmp_path) == []


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0, 0o666)])
def test_written_files_follow_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    os.umask(mask)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path, SPEC.build(), SPEC, extra_files={"history.json": b"{}"})
    for written in (path, path.with_suffix(".json"), tmp_path / "history.json"):
        assert stat.S_IMODE(written.stat().st_mode) == mode, written


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "{}\n", "---\n"])
def test_empty_study_file_is_refused(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    for argv in (["sweep", str(path), "--dry-run"], ["sweep", str(path), "--out", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "study file is empty" in err and err.count("\n") == 1
    assert not out.exists()


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndataset: synthetic\nmodel: mlp\nseeds: [0, 1]\n"
                    "grid:\n  train.lr: [0.1, 0.2]\n")
    out = tmp_path / "never"
    assert main(["sweep", str(path), "--dry-run", "--out", str(out)]) == 0
    first, estimate, data = capsys.readouterr().out.strip().splitlines()
    assert first == "study s: 4 runs; dry run, nothing written"
    assert estimate.startswith("estimated work: ≈ ") and "--max-hours" in estimate
    assert data == "data: every dataset loads here"
    assert not out.exists()
