"""Grid expansion and stable run ids.

``expand(study)`` yields, for each variant (or the study itself when it has none), the cross
product of the study's and the variant's ``grid`` (dotted key → list of values), times ``seeds``
(the variant's own ``seeds`` where it lists them).
Only ``grid`` values expand: list-valued options (``epsilons``, ``hidden``) stay as given.

``run_id(config)`` = first 16 hex digits of SHA-256 over the canonical JSON (sorted keys, no
spaces) of the fully resolved run config minus its execution-only fields
(:data:`~rankrobust.experiments.config.EXECUTION_FIELDS` and ``train.progress``). Equal configs
give equal ids in any study file, process or machine; any change to a computed field changes it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from typing import Any

from rankrobust.configuration import to_dict
from rankrobust.errors import ConfigError
from rankrobust.experiments.config import EXECUTION_FIELDS, RunConfig, run_config_from_dict
from rankrobust.experiments.study_config import STUDY_KEYS, StudyConfig
from rankrobust.work_args import DEFAULT_MAX_RUNS

ID_VERSION = 1
ID_LENGTH = 16


def identity_dict(config: RunConfig) -> dict[str, Any]:
    """The part of a run config that determines its results (what the id hashes)."""
    data = to_dict(config)
    for key in EXECUTION_FIELDS:
        data.pop(key, None)
    data["train"].pop("progress", None)
    return {"id_version": ID_VERSION, "run": data}


def canonical_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, compact separators, NaN/inf refused."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def run_id(config: RunConfig) -> str:
    """Stable id of a run: hash of the canonical JSON of its identity (see module docstring)."""
    digest = hashlib.sha256(canonical_json(identity_dict(config)).encode()).hexdigest()
    return digest[:ID_LENGTH]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``: mappings merge recursively, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data['a']['b']['c'] = value`` for ``key='a.b.c'``, creating mappings on the way."""
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"grid key {key!r}: {'.'.join(parts[: i + 1])!r} is not a section")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(_short(v) for v in value)
    return str(value)


def _check_grid_key(key: str, where: str) -> None:
    if key in STUDY_KEYS:
        raise ConfigError(f"{where}.{key}: {key!r} cannot be a grid key")
    if key in ("train.seed", "seed"):
        raise ConfigError(f"{where}.{key}: list seeds under 'seeds:' instead")


def _seeds(study: StudyConfig, variant: dict[str, Any]) -> list[int]:
    """A variant's own ``seeds`` if it lists them, else the study's."""
    return list(variant.get("seeds") or study.seeds)


def count_runs(study: StudyConfig) -> int:
    """How many runs ``study`` expands to before duplicates are merged: per variant, the product
    of its grid's list lengths times the number of seeds. Nothing is expanded."""
    total = 0
    for variant in list(study.variants) or [{"name": ""}]:
        grid = {**study.grid, **(variant.get("grid") or {})}
        total += math.prod(len(values) for values in grid.values()) * len(_seeds(study, variant))
    return total


def run_cap(study: StudyConfig, max_runs: int | None = None) -> int:
    """The most runs ``study`` may expand to: ``max_runs`` (the command line's ``--max-runs``,
    default :data:`~rankrobust.experiments.config.DEFAULT_MAX_RUNS`), lowered, never raised,
    by the study's own ``max_runs``: a file shared by someone else cannot lift the cap."""
    cap = DEFAULT_MAX_RUNS if max_runs is None else max_runs
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ConfigError(f"--max-runs must be an integer ≥ 1, got {cap!r}")
    return min(cap, study.max_runs)


def check_count(study: StudyConfig, max_runs: int | None = None) -> int:
    """:func:`count_runs` of ``study``; ConfigError, before anything is expanded, when it
    exceeds :func:`run_cap`."""
    count, cap = count_runs(study), run_cap(study, max_runs)
    if count > cap:
        raise ConfigError(
            f"the study expands to {count:,} runs, more than max_runs = {cap:,}; shrink the "
            "grid or pass --max-runs N (a study's own max_runs can only lower the cap)"
        )
    return count


def expand(study: StudyConfig, max_runs: int | None = None) -> list[RunConfig]:
    """All distinct runs of ``study``, in file order (variants, grid points, then seeds).

    Raises ConfigError naming the dotted path and, for grid points, the run's label; and, before
    expanding anything, when :func:`count_runs` exceeds :func:`run_cap` (``max_runs`` is the
    command line's cap).
    """
    check_count(study, max_runs)
    variants = list(study.variants) or [{"name": ""}]
    runs: list[RunConfig] = []
    seen: set[str] = set()
    for variant in variants:
        vname = str(variant.get("name", ""))
        overrides = {k: v for k, v in variant.items() if k not in ("name", "grid", "seeds")}
        base = deep_merge(study.base, overrides)
        grid = {**study.grid, **(variant.get("grid") or {})}
        for key in grid:
            _check_grid_key(key, f"variants[{vname}].grid" if vname else "grid")
        keys = list(grid)
        for point in itertools.product(*(grid[k] for k in keys)):
            for seed in _seeds(study, variant):
                data = copy.deepcopy(base)
                for key, value in zip(keys, point, strict=True):
                    set_dotted(data, key, value)
                set_dotted(data, "train.seed", seed)
                parts = [f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in zip(keys, point, strict=True)]
                label = "/".join(p for p in [vname, ",".join(parts), f"seed={seed}"] if p)
                model = data.get("model", RunConfig.model)
                if isinstance(model, str) and model in study.per_model_options:
                    opts = data.get("model_options") or {}
                    if not isinstance(opts, dict):
                        raise ConfigError(f"model_options: expected a mapping, got {opts!r}")
                    data["model_options"] = {**study.per_model_options[model], **opts}
                data.update(study=study.name, variant=vname, label=label)
                try:
                    config = run_config_from_dict(data)
                except ConfigError as exc:
                    raise ConfigError(f"{exc} [run {label}]" if parts or vname else str(exc)) from None
                rid = run_id(config)
                if rid not in seen:
                    seen.add(rid)
                    runs.append(config)
    return runs
