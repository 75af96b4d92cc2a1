"""The built-in reproduction of the paper's study: presets, per-dataset settings, one call to run.

A preset (``presets/<scale>.yaml``, a study file) fixes training, the λ grids, the attacks and
their ε grids. :func:`reproduce_study` fills in what the command line chooses:

- ``dataset``: the default is ``synthetic`` for ``smoke``, ``mnist5k`` for ``small``,
  ``fashion-mnist`` for ``paper`` and ``mnist`` for ``full``;
- per-dataset overrides: a preset's ``datasets: {NAME: {dotted.key: value}}`` section (e.g. more
  epochs and a smaller validation split on MNIST-5k), applied before validation;
- the models (:func:`models_for`): those the dataset's entry names (CIFAR-10: ``mlp`` and
  ``cnn-small``), else the preset's ``grid.model`` (``paper-v2``: capacity-matched pairs), else
  each family's default model (a fully connected ``mlp`` and a CNN, ``lenet5``);
- budgets: a preset writes its ε's at MNIST scale (0.3); the dataset entry's ``eps_scale``
  divides them on data whose models break at smaller ε: Fashion-MNIST by 3 (0.3 → 0.1, its
  usual training budget), CIFAR-10 by ≈ 9.4 (0.3 → 8/255). Our choice, as the paper trains on
  MNIST only;
- ``seeds``: N seeds 0..N−1 for every variant (by default the preset's, per variant where a
  variant lists its own).

:func:`run_reproduce` runs the sweep (resumable: rerunning skips finished runs) into
``OUT/results.sqlite``; ``rankrobust reproduce`` then builds the report in ``OUT/report/``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from rankrobust.configuration import closest
from rankrobust.data import DATASETS
from rankrobust.errors import ConfigError
from rankrobust.experiments.study_config import DEFAULT_MAX_RUNS, StudyConfig, study_from_dict
from rankrobust.experiments.study_file import parse_study_yaml
from rankrobust.experiments.sweep import SweepSummary, run_sweep
from rankrobust.models import default_models
from rankrobust.registries import lookup

SCALES = ("smoke", "small", "paper", "paper-v2", "full")
DEFAULT_DATASET = {"smoke": "synthetic", "small": "mnist5k", "paper": "fashion-mnist",
                   "paper-v2": "fashion-mnist", "full": "mnist"}
PRESET_DIR = Path(__file__).parent / "presets"


def models_for(dataset: str) -> list[str]:
    """[FC model, CNN model] studied on ``dataset``: those its entry names, else each family's
    default model."""
    models = lookup(DATASETS, dataset, "dataset").models
    return list(models) if models is not None else default_models()


def load_preset(scale: str) -> dict[str, Any]:
    """The preset study file of ``scale`` as plain data."""
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}{closest(scale, list(SCALES))}; "
                          f"choose from {', '.join(SCALES)}")
    path = PRESET_DIR / f"{scale}.yaml"
    data = parse_study_yaml(path.read_text(encoding="utf-8"), f"preset {scale}")
    if not isinstance(data, dict):
        raise ConfigError(f"preset {scale}: expected a mapping")
    return data


def _apply_overrides(data: dict[str, Any], dataset: str) -> None:
    """Apply (then drop) the preset's ``datasets:`` overrides for ``dataset`` (dotted keys).

    ``variants.NAME.rest`` sets ``rest`` in the variant called NAME (e.g.
    ``variants.pgd-adv.train.method.steps: 10``; variant names may hold dots only there)."""
    overrides = data.pop("datasets", None) or {}
    for key, value in (overrides.get(dataset) or {}).items():
        node = data
        if key.startswith("variants."):
            name, _, key = key.removeprefix("variants.").partition(".")
            found = [v for v in data.get("variants", []) if v.get("name") == name]
            if not found or not key:
                raise ConfigError(f"datasets.{dataset}: no variant {name!r} to set {key!r} in")
            node = found[0]
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value


def _scale_eps(data: dict[str, Any], factor: float) -> None:
    """Divide every ε of the study (adversarial training, attack grids, interventions) by ``factor``."""
    evaluation = data.get("evaluation", {})
    for attack in evaluation.get("attacks", []):
        attack["epsilons"] = [round(e / factor, 6) for e in attack["epsilons"]]
    interventions = list(evaluation.get("interventions", []))
    for variant in data.get("variants", []):
        interventions.extend(variant.get("evaluation", {}).get("interventions", []))
    for intervention in interventions:
        if "eps" in intervention:
            intervention["eps"] = round(intervention["eps"] / factor, 6)
    methods: list[Any] = [data.get("train", {}).get("method")]
    for variant in data.get("variants", []):
        methods.append(variant.get("train", {}).get("method"))
        methods.extend((variant.get("grid") or {}).get("train.method", []))
    for method in methods:  # every method with a training budget (adversarial, TRADES, ...)
        if isinstance(method, dict) and "eps" in method:
            method["eps"] = round(method["eps"] / factor, 6)
            if method.get("step_size") is not None:
                method["step_size"] = round(method["step_size"] / factor, 6)


def reproduce_study(
    scale: str = "small",
    dataset: str | None = None,
    seeds: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    max_runs: int | None = None,
) -> StudyConfig:
    """The study of ``scale`` on ``dataset`` with seeds 0..``seeds``−1 (see module docstring);
    a seed count beyond the run cap (``max_runs``, :func:`~rankrobust.experiments.grid.run_cap`)
    is refused before any list is built."""
    data = copy.deepcopy(load_preset(scale))
    dataset = dataset or DEFAULT_DATASET[scale]
    info = lookup(DATASETS, dataset, "dataset")
    if seeds is not None:
        cap = DEFAULT_MAX_RUNS if max_runs is None else max_runs
        if seeds < 1 or seeds > cap:
            raise ConfigError(f"--seeds must be in 1..{cap:,} (the run cap; --max-runs raises "
                              f"it), got {seeds}")
        data["seeds"] = list(range(seeds))
        for variant in data.get("variants", []):  # --seeds N: every variant N seeds
            variant.pop("seeds", None)
    data["dataset"] = dataset
    data["name"] = f"{data.get('name', 'reproduce')}-{dataset}"
    grid = data.setdefault("grid", {})
    if "model" not in grid or info.models is not None:  # a preset may name its (matched) models
        grid["model"] = models_for(dataset)
    if data_dir is not None:
        data["data_dir"] = str(data_dir)
    _apply_overrides(data, dataset)
    if info.eps_scale != 1.0:  # ε's stay exactly as written at MNIST scale
        _scale_eps(data, info.eps_scale)
    return study_from_dict(data)


def run_reproduce(
    scale: str = "small",
    dataset: str | None = None,
    seeds: int | None = None,
    out: str | os.PathLike[str] = "runs/reproduce",
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    command: str | None = None,
    max_runs: int | None = None,
    max_hours: float | None = None,
) -> SweepSummary:
    """Run (or resume) the study of ``scale`` into ``out/results.sqlite``; its sweep summary.

    ``max_runs`` and ``max_hours`` as in :func:`~rankrobust.experiments.sweep.run_sweep`.
    The report (``rankrobust.report.build_report``) is built from that database by the caller.
    """
    study = reproduce_study(scale, dataset, seeds, data_dir, max_runs)
    return run_sweep(study, out=out, executor=executor, workers=workers, address=address,
                     progress=progress, command=command, max_runs=max_runs, max_hours=max_hours)
