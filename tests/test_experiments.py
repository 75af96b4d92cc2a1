"""Runs, the results store, sweeps (resume, failure isolation), the process pool and the CLI."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from rankrobust.attacks import deepfool
from rankrobust.attacks.base import predict
from rankrobust.checkpoint import load_checkpoint
from rankrobust.cli.main import main
from rankrobust.data import load_dataset
from rankrobust.experiments import (
    ResultsStore,
    execute_run,
    expand,
    run_config_from_dict,
    run_id,
    run_sweep,
    study_from_dict,
)

RUN: dict[str, Any] = {
    "dataset": "synthetic",
    "model": "mlp",
    "model_options": {"hidden": [8]},
    "train": {"epochs": 2, "batch_size": 128, "device": "cpu", "lr": 0.01},
    "evaluation": {"n": 32},
}
# A run that raises at run time (the config is valid; the data is not there).
# a run that fails while it runs (a study whose data is missing is refused before it starts):
# Adam moves every weight by ~lr in its first step, so the second step's logits overflow
DIVERGING = {"name": "broken", "train": {"epochs": 2, "lr": 1e30}}


def _study(**over: Any) -> dict[str, Any]:
    data = {"name": "t", **copy.deepcopy(RUN)}
    data.update(over)
    return data


@pytest.fixture(scope="module")
def one_result() -> Any:
    config = run_config_from_dict(copy.deepcopy(RUN))
    return config, execute_run(config)


def test_execute_run_is_pure_and_deterministic(one_result: Any) -> None:
    config, result = one_result
    assert result.status == "complete", result.traceback
    assert result.run_id == run_id(config)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.clean_accuracy == result.history[-1]["test_acc"]
    # structure: epoch 0 (init) .. 2, two weight layers of the 256-8-4 MLP
    assert sorted({(r["epoch"], r["layer"]) for r in result.structure}) == [
        (e, layer) for e in (0, 1, 2) for layer in ("layers.0", "layers.2")
    ]
    assert [len(v) for v in result.spectra.values()] == [8, 4]
    again = execute_run(config)
    strip = [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in result.history]
    assert strip == [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in again.history]
    assert again.spectra == result.spectra
    assert set(result.versions) == {"python", "torch", "numpy", "rankrobust"}


def test_divergence_and_exceptions_become_failed_results() -> None:
    diverge = run_config_from_dict({**copy.deepcopy(RUN), "train": {
        "epochs": 1, "optimizer": "sgd", "lr": 1e30, "device": "cpu"}})
    result = execute_run(diverge)
    assert result.status == "failed" and result.error.startswith("TrainingDivergedError: ")
    assert "Traceback" in (result.traceback or "")
    broken = execute_run(run_config_from_dict(
        {**copy.deepcopy(RUN), "dataset": "mnist", "data_dir": "/nonexistent/x"}))
    assert broken.status == "failed" and broken.error.startswith("DataError: ")


def test_store_round_trip_has_the_contract_columns(tmp_path: Path, one_result: Any) -> None:
    config, result = one_result
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert store.register([config, config]) == 1
        store.mark_running(result.run_id)
        store.record(result)
        store.record(result)  # recording again replaces, never duplicates
        runs = store.runs()
        for col in ("run_id", "status", "error", "config", "dataset", "model", "method",
                    "method_params", "seed", "clean_accuracy",
                    "train_seconds", "eval_seconds", "started_at", "finished_at",
                    "torch_version", "numpy_version", "python_version", "rankrobust_version"):
            assert col in runs.columns, col
        row = runs.iloc[0]
        assert (row.status, row.method, row.seed, row.attempts) == ("complete", "natural", 0, 1)
        assert json.loads(row.method_params) == config.train.method.params()
        assert json.loads(row.config)["model"] == "mlp"
        assert row.clean_accuracy == pytest.approx(result.clean_accuracy)
        em = store.epoch_metrics()
        assert list(em.epoch) == [1, 2] and {"train_loss", "test_acc", "lr"} <= set(em.columns)
        assert em.test_acc.tolist() == [h["test_acc"] for h in result.history]
        st = store.structure()
        assert len(st) == len(result.structure) == 6
        assert {"layer", "kind", "shape", "effective_rank", "normalized_effective_sparsity"} <= set(st.columns)
        assert st.effective_rank.tolist() == [r["effective_rank"] for r in result.structure]
        sp = store.spectra()
        assert list(sp.columns) == ["run_id", "layer", "index", "singular_value"] and len(sp) == 12
        first = sp[sp.layer == "layers.0"].sort_values("index").singular_value.tolist()
        assert first == result.spectra["layers.0"]
        sc = store.scalars()
        assert set(sc.name) >= {"final_test_acc", "final_test_loss"}
        assert store.robustness().empty and store.runs(status="failed").empty
        assert store.structure([result.run_id]).shape == st.shape and store.structure([]).empty
        assert store.integrity_check() == "ok"
    con = sqlite3.connect(tmp_path / "r.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sweep_isolates_failures_resumes_and_retries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = study_from_dict(_study(seeds=[0, 1], variants=[
        {"name": "ok"}, DIVERGING,
    ]))
    first = run_sweep(study, out=tmp_path, progress=True)
    assert (first.total, first.executed, first.complete, first.failed) == (4, 4, 2, 2)
    assert first.exit_code == 1
    bar = capsys.readouterr().err
    assert "done=2 running=0 failed=2" in bar and "ETA" in bar and "4/4" in bar
    assert bar.count("failed: TrainingDivergedError") == 2
    store = ResultsStore(tmp_path / "results.sqlite")
    runs = store.runs()
    failed = runs[runs.status == "failed"]
    assert set(failed.variant) == {"broken"} and failed.error.str.startswith("TrainingDivergedError").all()
    assert set(runs[runs.status == "complete"].variant) == {"ok"}
    # a second sweep of the same study executes nothing
    second = run_sweep(study, out=tmp_path, progress=False)
    assert (second.skipped, second.executed, second.exit_code) == (4, 0, 1)
    # an interrupted run (status running) is rerun; failed ones only with retry_failed
    victim = runs[runs.status == "complete"].run_id.iloc[0]
    store._con.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (victim,))
    third = run_sweep(study, out=tmp_path, progress=False)
    assert (third.executed, third.complete) == (1, 1)
    fourth = run_sweep(study, out=tmp_path, progress=False, retry_failed=True)
    assert (fourth.executed, fourth.failed) == (2, 2)
    runs = store.runs()
    assert len(runs) == 4 and runs.set_index("run_id").attempts[victim] == 2
    assert len(store.epoch_metrics()) == 2 * 2  # each complete run's epochs stored once
    store.close()
    from rankrobust.errors import ConfigError
    from rankrobust.experiments.sweep import exclusive

    with exclusive(tmp_path / "results.sqlite"), pytest.raises(ConfigError, match="another sweep"):
        run_sweep(study, out=tmp_path, progress=False)


def test_process_pool_matches_sequential_and_saves_checkpoints(tmp_path: Path) -> None:
    from rankrobust.checkpoint import load_checkpoint

    study = study_from_dict(_study(seeds=[0, 1], save_checkpoints=True,
                                   train={**RUN["train"], "epochs": 1}))
    pooled = run_sweep(study, out=tmp_path / "pool", workers=2, progress=False)
    seq = run_sweep(study, out=tmp_path / "seq", workers=1, progress=False)
    assert pooled.complete == seq.complete == 2
    a = ResultsStore(pooled.db).epoch_metrics().drop(columns="epoch_seconds")
    b = ResultsStore(seq.db).epoch_metrics().drop(columns="epoch_seconds")
    assert a.sort_values("run_id").reset_index(drop=True).equals(b.sort_values("run_id").reset_index(drop=True))
    for config in expand(study):
        ckpt = load_checkpoint(tmp_path / "pool" / "checkpoints" / run_id(config))
        assert ckpt.meta["run_id"] == run_id(config)


def test_cli_sweep_and_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_study(train={**RUN["train"], "epochs": 1})))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    assert "1 executed (1 complete, 0 failed)" in capsys.readouterr().out
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    assert "0 executed" in capsys.readouterr().out
    db = str(out / "results.sqlite")
    assert main(["runs", "--db", db, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["complete"] and rows[0]["method"] == "natural"
    assert main(["runs", "--db", db, "--status", "failed"]) == 0
    assert "no runs" in capsys.readouterr().out
    path.write_text(yaml.safe_dump(_study(train={"epochz": 1})))
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'train.epochz'" in err and len(err.splitlines()) == 1
    assert main(["runs", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert main(["sweep", str(path), "--executor", "local", "--address", "x:1"]) == 2


def test_attacks_and_rho_adv_are_stored(tmp_path: Path) -> None:
    pytest.importorskip("rankrobust.robustness")
    study = study_from_dict(_study(save_checkpoints=True, evaluation={
        "n": 32, "deepfool": True, "sanity_checks": True,
        "attacks": [{"attack": "fgsm", "norm": "inf", "epsilons": [0.0, 0.05, 0.3]},
                    {"attack": "pgd", "epsilons": [0.05], "options": {"steps": 3}}],
    }))
    summary = run_sweep(study, out=tmp_path, progress=False)
    store = ResultsStore(summary.db)
    assert summary.complete == 1, store.runs().error.tolist()
    rob = store.robustness()
    for col in ("attack", "norm", "epsilon", "fooling_ratio", "fooling_ratio_correct",
                "robust_accuracy", "clean_accuracy", "n"):
        assert col in rob.columns
    assert rob.attack.tolist() == ["fgsm", "fgsm", "fgsm", "pgd"]
    assert rob.epsilon.tolist() == [0.0, 0.05, 0.3, 0.05]
    assert rob.fooling_ratio.iloc[0] == 0.0  # ε = 0 changes nothing
    assert json.loads(rob.options.iloc[3]) == {"steps": 3}
    rho = store.scalars().set_index("name").value["rho_adv"]
    # ρ_adv recomputed from the stored checkpoint, by its definition: DeepFool (ℓ2) on the
    # first n = 32 test inputs, labelled by the model, mean ‖r‖₂ / ‖x‖₂ over the ones it flips
    model = load_checkpoint(store.runs().checkpoint.iloc[0]).model.eval()
    x = load_dataset("synthetic", "test")[0][:32]
    found = deepfool(model, x, predict(model, x))
    assert found.success.sum() >= 16  # most inputs flipped: the mean is over real ratios
    ratios = found.perturbation.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert rho == pytest.approx(float(ratios[found.success].double().mean()), rel=1e-6)
    # the checks ran (sanity_checks: true) and their warnings are stored as they came, neither
    # dropped nor invented: the run is deterministic, so executing it again gives the same ones
    again = execute_run(expand(study)[0])
    stored = store.runs().warnings.iloc[0]
    assert (json.loads(stored) if stored else []) == again.warnings
    assert all(isinstance(w, str) and w for w in again.warnings)
    # the evaluation is deterministic: executing the run again gives the same curves
    assert [r["fooling_ratio"] for r in again.robustness] == rob.fooling_ratio.tolist()
