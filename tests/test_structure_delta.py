"""Structure of W − W₀ (the update since initialization): exact answers (zero update, rank-one
update), recorded during training, stored, and in ``analyze --init``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rankrobust.checkpoint import save_checkpoint
from rankrobust.cli.main import main
from rankrobust.errors import ConfigError, DataError
from rankrobust.experiments import ResultsStore, expand, study_from_dict
from rankrobust.experiments.run import execute_run
from rankrobust.models import ModelSpec
from rankrobust.structure import DELTA_COLUMNS, analyze, analyze_delta, snapshot
from rankrobust.training.config import TrainConfig
from rankrobust.training.fit import fit, model_spec_for
from rankrobust.training.seeding import seed_everything


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()


def test_zero_update_gives_zero_everywhere() -> None:
    model = net()
    delta = analyze_delta(model, snapshot(model))
    assert list(delta.columns) == ["layer", *DELTA_COLUMNS]
    assert (delta[list(DELTA_COLUMNS)].to_numpy() == 0).all()
    assert analyze(model)["effective_rank"].min() > 1  # while W itself is full rank


def test_rank_one_update_has_effective_rank_one() -> None:
    model = net()
    init = snapshot(model)
    u, v = torch.arange(1.0, 6.0, dtype=torch.float64), torch.linspace(-1, 2, 6, dtype=torch.float64)
    with torch.no_grad():
        model[0].weight += torch.outer(u, v)
    row = analyze_delta(model, init).set_index("layer").loc["0"]
    exact = analyze_delta(model, init, method="svd").set_index("layer").loc["0"]
    norm = float(u.norm() * v.norm())  # ‖u vᵀ‖ = ‖u‖‖v‖ in spectral, Frobenius and nuclear norm
    assert row["delta_effective_rank"] == pytest.approx(1.0, abs=1e-6)
    assert exact["delta_numerical_rank"] == 1  # float64 Gram cannot resolve σ₂ below √ε·σ₁
    assert row["delta_stable_rank"] == pytest.approx(1.0)
    for col in ("delta_spectral_norm", "delta_frobenius_norm", "delta_nuclear_norm"):
        assert row[col] == pytest.approx(norm)
    assert row["delta_l1_norm"] == pytest.approx(float(torch.outer(u, v).abs().sum()))
    other = analyze_delta(model, init).set_index("layer").loc["2"]
    assert other["delta_frobenius_norm"] == 0  # the untouched layer


def test_other_architecture_is_refused() -> None:
    model = net()
    with pytest.raises(ConfigError, match="initial weights of layer '0'"):
        analyze_delta(model, snapshot(nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))))


def test_training_records_the_update_since_init() -> None:
    config = TrainConfig(epochs=2, track_structure=True, progress=False, seed=3)
    fitted = fit("synthetic", "mlp", config, {"hidden": [8]})
    rows = fitted.result.records["structure"]
    first = [r for r in rows if r["epoch"] == 0]
    last = [r for r in rows if r["epoch"] == 2]
    assert first and all(r[c] == 0 for r in first for c in DELTA_COLUMNS)
    seed_everything(3)
    init = model_spec_for("synthetic", "mlp", {"hidden": [8]}).build()
    expected = analyze_delta(fitted.model, snapshot(init)).set_index("layer")
    for r in last:
        assert r["delta_frobenius_norm"] > 0
        assert r["delta_frobenius_norm"] == pytest.approx(expected.loc[r["layer"], "delta_frobenius_norm"])
        assert r["delta_effective_rank"] == pytest.approx(expected.loc[r["layer"], "delta_effective_rank"])


STUDY = {"name": "d", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
         "train": {"epochs": 2, "device": "cpu"}, "evaluation": {"n": 8, "spectra": False},
         "seeds": [0, 1]}


def test_a_run_stores_its_deltas_and_the_store_checks_them(tmp_path: Path) -> None:
    configs = expand(study_from_dict(STUDY))
    result = execute_run(configs[0])
    assert result.ok
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as store:
        store.register(configs)
        store.record(result)
        frame = store.structure()
    assert set(DELTA_COLUMNS) <= set(frame.columns)
    assert (frame.loc[frame["epoch"] == 0, list(DELTA_COLUMNS)].to_numpy() == 0).all()
    assert (frame.loc[frame["epoch"] == 2, "delta_frobenius_norm"] > 0).all()
    con = sqlite3.connect(db)
    extra = json.loads(con.execute("SELECT extra FROM structure LIMIT 1").fetchone()[0])
    extra["delta_normalized_effective_rank"] = 1.5
    con.execute("UPDATE structure SET extra = ?", (json.dumps(extra),))
    con.commit()
    con.close()
    with ResultsStore(db, readonly=True) as store, pytest.raises(
            DataError, match=r"structure.delta_normalized_effective_rank = 1.5"):
        store.structure()


def test_analyze_init_prints_delta_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [5]})
    torch.manual_seed(0)
    first = spec.build()
    a = save_checkpoint(tmp_path / "a", first, spec, {"dataset": "synthetic"})
    torch.manual_seed(1)
    second = spec.build()
    b = save_checkpoint(tmp_path / "b", second, spec, {"dataset": "synthetic"})
    assert main(["analyze", str(b), "--init", str(a), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = analyze_delta(second, snapshot(first)).set_index("layer")
    assert [r["layer"] for r in rows] == list(expected.index)
    for r in rows:
        assert r["effective_rank"] > 0  # W's own columns are still there
        for c in DELTA_COLUMNS:
            assert r[c] == pytest.approx(float(expected.loc[r["layer"], c]))
    assert main(["analyze", str(a), "--init", str(a), "--format", "json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert all(np.isclose(r[c], 0) for r in same for c in DELTA_COLUMNS)
    other = ModelSpec("mlp", (1, 4, 4), 3, {"hidden": [6]})
    c = save_checkpoint(tmp_path / "c", other.build(), other, {"dataset": "synthetic"})
    assert main(["analyze", str(b), "--init", str(c)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "initial weights of layer" in err, err
