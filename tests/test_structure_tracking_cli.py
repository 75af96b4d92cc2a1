"""Structure over training (the callback through train()) and ``rankrobust analyze``."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch

from rankrobust.cli.main import main
from rankrobust.models import build_model
from rankrobust.structure import COLUMNS, DELTA_COLUMNS, analyze
from rankrobust.training import TrainConfig, train
from rankrobust.training.fit import fit, save_fit

Data = tuple[torch.Tensor, torch.Tensor]


def _config(track: bool) -> TrainConfig:
    return TrainConfig(epochs=2, batch_size=128, lr=5e-3, track_structure=track, progress=False, device="cpu")


def _fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", (1, 16, 16), 4, hidden=[16])


def test_tracking_records_init_and_every_epoch(synthetic_data: tuple[Data, Data]) -> None:
    train_data, test_data = synthetic_data
    model = _fresh_model()
    at_init = analyze(model)
    result = train(model, train_data, test_data, _config(track=True))
    rows = pd.DataFrame(result.records["structure"])
    assert set(rows.columns) == {*COLUMNS, *DELTA_COLUMNS, "epoch"}  # W and W − W₀
    assert (rows.loc[rows.epoch == 0, list(DELTA_COLUMNS)] == 0).all().all()
    rows = rows[["epoch", *COLUMNS]]
    assert len(at_init) == 2  # hidden 16 → output: two Linear layers
    assert rows.groupby("epoch")["layer"].apply(list).to_dict() == {
        e: list(at_init["layer"]) for e in (0, 1, 2)
    }
    init = rows[rows.epoch == 0].drop(columns="epoch").reset_index(drop=True)
    pd.testing.assert_frame_equal(init, at_init, check_dtype=False)
    final = rows[rows.epoch == 2].drop(columns="epoch").reset_index(drop=True)
    pd.testing.assert_frame_equal(final, analyze(model), check_dtype=False)
    assert not final["nuclear_norm"].equals(init["nuclear_norm"])  # training moved the weights
    # plain JSON values (stored with the run's history): they come back from JSON unchanged
    assert json.loads(json.dumps(result.records, allow_nan=False)) == result.records
    assert all(type(v) in (int, float, str) for row in result.records["structure"] for v in row.values())

    # Tracking only reads the weights: the same seed trains to the same numbers without it.
    untracked = _fresh_model()
    plain = train(untracked, train_data, test_data, _config(track=False))
    assert "structure" not in plain.records
    assert [h["train_loss"] for h in plain.history] == [h["train_loss"] for h in result.history]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                   untracked.state_dict().values(), strict=True))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt")
    fitted = fit("synthetic", "cnn-small", TrainConfig(epochs=1, batch_size=128, progress=False,
                                                       track_structure=True, device="cpu"))
    save_fit(out, fitted)
    history = json.loads((out / "history.json").read_text())
    assert {row["epoch"] for row in history["records"]["structure"]} == {0, 1}
    return out


def test_cli_analyze_formats(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(checkpoint), "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert tuple(frame.columns) == COLUMNS and len(frame) >= 3
    assert (frame["effective_rank"] >= 1).all()
    assert main(["analyze", str(checkpoint / "model.json"), "--format", "json", "--order", "2"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in records] == list(frame["layer"])
    assert all(r["effective_rank"] <= f + 1e-9 for r, f in zip(records, frame["effective_rank"], strict=True))
    assert main(["analyze", str(checkpoint / "model.safetensors"), "--conv", "per-tap"]) == 0
    table = capsys.readouterr().out
    assert "effective_rank" in table.splitlines()[0] and "[0,0]" in table


def test_cli_analyze_plots(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(checkpoint), "--plot", str(tmp_path / "plots")]) == 0
    for name in ("spectra.png", "weight_histograms.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert "spectra.png" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is not a checkpoint at all", "not a safetensors checkpoint"),
     (pickle.dumps({"weights": [1, 2]}), "refusing to unpickle")],
)
def test_cli_analyze_rejects_garbage_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(content)
    assert main(["analyze", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rankrobust: error:") and message in lines[0]


def test_cli_analyze_bad_options(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["analyze", str(checkpoint), "--order", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "order" in err[0]
