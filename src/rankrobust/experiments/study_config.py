"""Study configs: one base run config plus ``seeds``, a ``grid`` and ``variants``.

A *study* (:class:`StudyConfig`, read from a YAML file by
:func:`rankrobust.experiments.study_file.load_study`) holds one base run config (every
:class:`~rankrobust.experiments.config.RunConfig` field as plain data) plus ``seeds``, a ``grid``
of dotted keys → lists (their cross product), and optional ``variants`` (named partial
overrides, each with its own grid and optionally its own ``seeds``), see
:func:`rankrobust.experiments.grid.expand`. Only the study-level keys are checked here; every
run is checked when it is expanded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from rankrobust.configuration import SEED_RANGE, brief, check_seed, closest, require
from rankrobust.errors import ConfigError
from rankrobust.experiments.config import RunConfig
from rankrobust.experiments.margins import parse_margins
from rankrobust.models import MODELS
from rankrobust.work_args import DEFAULT_MAX_RUNS  # only --max-runs raises the cap


@dataclass
class StudyConfig:
    """A study file: a base run (every RunConfig field) plus ``seeds``, ``grid`` and ``variants``."""

    name: str = "study"
    base: dict[str, Any] = field(default_factory=dict)  # RunConfig fields as plain data
    seeds: tuple[int, ...] = (0,)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    variants: tuple[dict[str, Any], ...] = ()
    per_model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # refuse a study that expands to more runs; a study file can only lower the command line's
    # cap (see rankrobust.experiments.grid.run_cap), never raise it
    max_runs: int = DEFAULT_MAX_RUNS
    # the claims' equivalence margins as written (rankrobust.experiments.margins); None: defaults
    margins: dict[str, Any] | None = None


STUDY_KEYS = ("name", "seeds", "grid", "variants", "per_model_options", "max_runs", "margins")
RUN_KEYS = tuple(f for f in RunConfig.__dataclass_fields__ if f not in ("study", "variant", "label", "output_dir"))


def _check_grid(grid: Any, where: str) -> dict[str, list[Any]]:
    if grid is None:
        return {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: expected a mapping of dotted keys to lists, got {brief(grid)}")
    for key, values in grid.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: keys must be dotted option names, got {brief(key)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{key}: expected a non-empty list of values, got {brief(values)}")
    return dict(grid)


def _check_seeds(seeds: Any, where: str) -> list[int]:
    """``seeds`` if it is a non-empty list of distinct seeds (:func:`check_seed`), else ConfigError."""
    require(isinstance(seeds, list) and bool(seeds),
            f"{where}: expected a non-empty list of integers in {SEED_RANGE}, got {brief(seeds)}")
    for seed in seeds:
        check_seed(seed, where)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: duplicate seeds in {brief(seeds)}")
    return seeds


def study_to_dict(study: StudyConfig) -> dict[str, Any]:
    """The study as the plain data of a study file: ``study_from_dict(study_to_dict(s)) == s``."""
    data: dict[str, Any] = {"name": study.name, **copy.deepcopy(study.base),
                            "seeds": list(study.seeds)}
    if study.per_model_options:
        data["per_model_options"] = copy.deepcopy(study.per_model_options)
    if study.grid:
        data["grid"] = copy.deepcopy(study.grid)
    if study.variants:
        data["variants"] = copy.deepcopy(list(study.variants))
    if study.max_runs != DEFAULT_MAX_RUNS:
        data["max_runs"] = study.max_runs
    if study.margins is not None:
        data["margins"] = copy.deepcopy(study.margins)
    return data


def study_from_dict(data: Any, default_name: str = "study") -> StudyConfig:
    """Validate the study-level keys; run-level keys are checked per run by ``expand``."""
    if not isinstance(data, dict):
        raise ConfigError(f"a study file must be a mapping, got {type(data).__name__}")
    valid = [*STUDY_KEYS, *RUN_KEYS]
    for key in data:
        if key not in valid:
            raise ConfigError(f"unknown key {brief(str(key))}{closest(str(key), valid)}")
    name = data.get("name", default_name)
    require(isinstance(name, str) and bool(name), f"name: expected a non-empty string, got {brief(name)}")
    seeds = _check_seeds(data.get("seeds", [0]), "seeds")
    max_runs = data.get("max_runs", DEFAULT_MAX_RUNS)
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise ConfigError(f"max_runs: expected an integer ≥ 1, got {brief(max_runs)}")
    grid = _check_grid(data.get("grid"), "grid")
    variants = data.get("variants") or []
    if not isinstance(variants, list):
        raise ConfigError(f"variants: expected a list of mappings, got {brief(variants)}")
    names: list[str] = []
    for i, variant in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(variant, dict):
            raise ConfigError(f"{where}: expected a mapping, got {brief(variant)}")
        vname = variant.get("name")
        require(isinstance(vname, str) and bool(vname), f"{where}: needs a non-empty 'name'")
        require(vname not in names, f"{where}: duplicate variant name {brief(vname)}")
        names.append(str(vname))
        vvalid = ["name", "grid", "seeds", *RUN_KEYS]
        for key in variant:
            if key not in vvalid:
                raise ConfigError(f"unknown key '{where}.{key}'{closest(str(key), vvalid)}")
        _check_grid(variant.get("grid"), f"{where}.grid")
        if "seeds" in variant:  # this variant's own seeds instead of the study's
            _check_seeds(variant["seeds"], f"{where}.seeds")
    per_model = data.get("per_model_options") or {}
    if not isinstance(per_model, dict) or not all(isinstance(v, dict) for v in per_model.values()):
        raise ConfigError("per_model_options: expected a mapping model name → options mapping")
    for key in per_model:
        if key not in MODELS:
            raise ConfigError(
                f"per_model_options: unknown model {brief(key)}{closest(str(key), list(MODELS))}"
            )
    train = data.get("train")
    if isinstance(train, dict) and "seed" in train:
        raise ConfigError("train.seed: list the seeds under 'seeds:' instead")
    margins = data.get("margins")
    if margins is not None:
        parse_margins(margins)  # ConfigError naming the field
    base = {k: v for k, v in data.items() if k in RUN_KEYS}
    return StudyConfig(name, base, tuple(seeds), grid, tuple(variants), dict(per_model), max_runs,
                       copy.deepcopy(margins))
