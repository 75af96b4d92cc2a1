"""CLI: help, a full train run, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rankrobust.cli.main import main


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rankrobust", *args], capture_output=True, text=True, timeout=300
    )


def test_help_lists_train() -> None:
    out = _cli("--help")
    assert out.returncode == 0 and "train" in out.stdout


def test_train_writes_checkpoint_and_history(tmp_path: Path) -> None:
    out = _cli("train", "--dataset", "synthetic", "--model", "mlp", "--hidden", "16,8",
               "--epochs", "2", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["history.json", "model.json", "model.safetensors"]
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["model"]["options"]["hidden"] == [16, 8]
    assert meta["train_config"]["epochs"] == 2
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["history"]) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--epochs", "x", "--out", "o"], "invalid int value"),
        (["train", "--dataset", "nope", "--out", "o"], "'nope'"),
        (["train", "--dataset", "mnist", "--data-dir", "/nonexistent", "--out", "o"], "/nonexistent"),
        (["train", "--dataset", "synthetic", "--epochs", "0", "--out", "o"], "epochs"),
        (["train", "--dataset", "synthetic", "--eps", "0.1", "--out", "o"], "eps"),  # no adv. method
        (["train", "--dataset", "synthetic", "--hidden", "3", "--out", "o"], "--hidden"),
        (["bogus"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_data_subprocess_has_no_traceback(tmp_path: Path) -> None:
    out = _cli("train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"))
    assert out.returncode == 2
    assert out.stderr.startswith("rankrobust: error: cifar10") and "Traceback" not in out.stderr
