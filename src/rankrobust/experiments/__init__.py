"""Experiments: declarative study grids, pure runs, the SQLite results store, executors, sweeps.

- :mod:`~rankrobust.experiments.config`: strict run config schemas;
- :mod:`~rankrobust.experiments.study_config` / :mod:`~rankrobust.experiments.study_file`: study
  grids and the YAML files that hold them;
- :mod:`~rankrobust.experiments.grid`: grid expansion and stable run ids;
- :mod:`~rankrobust.experiments.run`: ``execute_run(config) -> RunResult`` (pure, picklable);
- :mod:`~rankrobust.experiments.store`: ``ResultsStore`` (SQLite, WAL, one transaction per write),
  its columns declared once in :mod:`~rankrobust.experiments.schema`;
- :mod:`~rankrobust.experiments.executors`: sequential, process pool and Ray executors;
- :mod:`~rankrobust.experiments.sweep`: ``run_sweep`` (resume, failure isolation, progress).
"""

from rankrobust.experiments.config import (
    AttackSpec,
    EvaluationConfig,
    Resources,
    RunConfig,
    run_config_from_dict,
)
from rankrobust.experiments.grid import expand, run_id
from rankrobust.experiments.run import RunResult, execute_run
from rankrobust.experiments.store import ResultsStore
from rankrobust.experiments.study_config import StudyConfig, study_from_dict
from rankrobust.experiments.study_file import load_study
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
