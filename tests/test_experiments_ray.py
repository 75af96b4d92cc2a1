"""The Ray executor on a real local Ray (2 CPUs): a tiny grid, one run failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankrobust.experiments import ResultsStore, run_sweep, study_from_dict

pytest.importorskip("ray")


def test_ray_executor_runs_a_tiny_grid(tmp_path: Path) -> None:
    import ray

    study = study_from_dict({
        "name": "ray", "dataset": "synthetic", "model": "mlp", "model_options": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu"}, "evaluation": {"n": 16},
        "seeds": [0, 1],
        "variants": [{"name": "ok"},
                     {"name": "broken", "dataset": "mnist", "data_dir": "/nonexistent/ray"}],
    })
    summary = run_sweep(study, out=tmp_path, executor="ray", progress=False)
    assert not ray.is_initialized()  # the local Ray it started is shut down again
    assert (summary.executed, summary.complete, summary.failed, summary.exit_code) == (4, 2, 2, 1)
    with ResultsStore(summary.db) as store:
        runs = store.runs()
        assert set(runs[runs.status == "complete"].variant) == {"ok"}
        assert runs[runs.status == "failed"].error.str.startswith("DataError").all()
        assert len(store.epoch_metrics()) == 2 and len(store.structure()) == 2 * 2 * 2
    again = run_sweep(study, out=tmp_path, executor="ray", progress=False)
    assert again.executed == 0
