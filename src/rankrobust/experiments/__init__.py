"""Experiments: declarative study grids, pure runs, the SQLite results store, executors, sweeps.

- :mod:`~rankrobust.experiments.config`: strict run and study schemas (YAML);
- :mod:`~rankrobust.experiments.grid`: grid expansion and stable run ids;
- :mod:`~rankrobust.experiments.run`: ``execute_run(config) -> RunResult`` (pure, picklable);
- :mod:`~rankrobust.experiments.store`: ``ResultsStore`` (SQLite, WAL, one transaction per write);
- :mod:`~rankrobust.experiments.executors`: sequential, process pool and Ray executors;
- :mod:`~rankrobust.experiments.sweep`: ``run_sweep`` (resume, failure isolation, progress).
"""

from rankrobust.experiments.config import (
    AttackSpec,
    EvaluationConfig,
    Resources,
    RunConfig,
    StudyConfig,
    load_study,
    run_config_from_dict,
    study_from_dict,
)
from rankrobust.experiments.grid import expand, run_id
from rankrobust.experiments.run import RunResult, execute_run
from rankrobust.experiments.store import ResultsStore
from rankrobust.experiments.sweep import SweepSummary, run_sweep

__all__ = [
    "AttackSpec",
    "EvaluationConfig",
    "Resources",
    "ResultsStore",
    "RunConfig",
    "RunResult",
    "StudyConfig",
    "SweepSummary",
    "execute_run",
    "expand",
    "load_study",
    "run_config_from_dict",
    "run_id",
    "run_sweep",
    "study_from_dict",
]
