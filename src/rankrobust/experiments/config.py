"""Run and study (grid) configs: strict schemas on top of :func:`rankrobust.configuration.from_dict`.

A *run config* (:class:`RunConfig`) is everything one training + evaluation needs: dataset, model
and its options, the full :class:`~rankrobust.training.TrainConfig` (seed included), the
evaluation (attacks × ε lists, DeepFool ρ_adv, spectra) and execution-only fields (resources,
checkpointing, labels) that do not enter the run id.

A *study* file (YAML) holds one base run config plus ``seeds``, a ``grid`` of dotted keys → lists
(their cross product), and optional ``variants`` (named partial overrides, each with its own grid
and optionally its own ``seeds``), see :func:`rankrobust.experiments.grid.expand`.
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rankrobust.attacks.registry import AttackName, get_attack
from rankrobust.configuration import brief, check_seed, closest, from_dict, require
from rankrobust.data import DATASETS, dataset_info
from rankrobust.data.files import read_regular
from rankrobust.errors import ConfigError
from rankrobust.experiments.margins import parse_margins
from rankrobust.interventions import INTERVENTIONS
from rankrobust.methods import TrainingMethod
from rankrobust.models import MODELS
from rankrobust.models.registry import meta_model, model_options, state_shapes
from rankrobust.strict_yaml import load_yaml
from rankrobust.training.config import TrainConfig
from rankrobust.work_args import DEFAULT_MAX_RUNS, check_levels  # only --max-runs raises the cap


@dataclass
class AttackSpec:
    """One robustness curve: ``attack`` at each budget ε in ``epsilons`` (ℓ_``norm`` ball)."""

    attack: AttackName = "fgsm"
    norm: Literal["inf", "2"] = "inf"
    epsilons: tuple[float, ...] = (0.1,)
    options: dict[str, Any] = field(default_factory=dict)  # passed on to the attack
    n: int | None = None  # attack only the first n of the evaluation's points (default: all)

    def to_config(self) -> dict[str, Any]:
        """Plain form; ``n`` only when set, so that adding the field kept every run id."""
        data = {"attack": self.attack, "norm": self.norm, "epsilons": list(self.epsilons),
                "options": dict(self.options)}
        return data if self.n is None else {**data, "n": self.n}

    def check(self, where: str) -> None:
        """Impossible values raise ConfigError naming ``where`` (e.g. ``attacks[0]``)."""
        require(self.n is None or self.n >= 1, f"{where}.n: must be ≥ 1, got {self.n}")
        eps = list(self.epsilons)
        require(len(eps) > 0, f"{where}.epsilons: list at least one budget")
        check_levels(eps, f"{where}.epsilons")
        require(all(e >= 0 and math.isfinite(e) for e in eps),
               f"{where}.epsilons: budgets must be finite numbers ≥ 0, got {eps}")
        require(len(set(eps)) == len(eps), f"{where}.epsilons: duplicate budgets in {eps}")
        if "seed" in self.options:
            check_seed(self.options["seed"], f"{where}.options.seed")
        get_attack(self.attack).check_spec(self.norm, self.options, where)
        grid, bisect = self.options.get("grid", False), self.options.get("bisect", 0)
        require(isinstance(grid, bool), f"{where}.options.grid: true or false, got {brief(grid)}")
        require(not isinstance(bisect, bool) and isinstance(bisect, int) and 0 <= bisect <= 20,
                f"{where}.options.bisect: an integer in 0..20, got {brief(bisect)}")


@dataclass
class InterventionSpec:
    """One intervention table per run: ``kind`` (svd | svd-energy | prune | prune-global) at each
    share in ``keeps``, measured under ``attack`` at budget ``eps`` (``rankrobust.interventions``)."""

    kind: str = "svd"
    keeps: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    per_layer: bool = False
    attack: AttackName = "pgd"
    norm: Literal["inf", "2"] = "inf"
    eps: float = 0.1
    deepfool: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # passed on to the attack

    def check(self, where: str) -> None:
        """Impossible values raise ConfigError naming ``where`` (e.g. ``interventions[0]``)."""
        require(self.kind in INTERVENTIONS, f"{where}.kind: unknown intervention {self.kind!r}"
                f"{closest(self.kind, list(INTERVENTIONS))}; choose from {', '.join(INTERVENTIONS)}")
        keeps = list(self.keeps)
        check_levels(keeps, f"{where}.keeps")
        require(len(keeps) > 0 and all(math.isfinite(k) and 0 < k <= 1 for k in keeps),
                f"{where}.keeps: shares in (0, 1], got {keeps}")
        require(len(set(keeps)) == len(keeps), f"{where}.keeps: duplicate shares in {keeps}")
        require(math.isfinite(self.eps) and self.eps >= 0, f"{where}.eps: a budget ≥ 0, got {self.eps}")
        require(not self.per_layer or INTERVENTIONS[self.kind].per_layer,
                f"{where}.per_layer: {self.kind!r} has no per-layer form")
        if "seed" in self.options:
            check_seed(self.options["seed"], f"{where}.options.seed")
        get_attack(self.attack).check_spec(self.norm, self.options, where)


@dataclass
class EvaluationConfig:
    """After training: robustness curves on the first ``n`` test inputs, ρ_adv, final spectra."""

    attacks: tuple[AttackSpec, ...] = ()
    n: int = 500  # number of test inputs the attacks see
    batch_size: int = 256
    deepfool: bool = False  # store DeepFool ρ_adv = mean ‖r‖₂/‖x‖₂ as scalar "rho_adv"
    deepfool_options: dict[str, Any] = field(default_factory=dict)
    spectra: bool = True  # store the final model's singular values per layer
    # robustness.sanity_checks on every curve (true), on the curves of the listed attacks, or none
    # (false); checks reuse the run's other curves where they can; warnings are stored
    sanity_checks: bool | tuple[AttackName, ...] = False
    interventions: tuple[InterventionSpec, ...] = ()  # rank/pruning interventions, stored per run

    def checks(self, attack: str) -> bool:
        """Whether the sanity checks run on the curve of ``attack``."""
        return self.sanity_checks if isinstance(self.sanity_checks, bool) else attack in self.sanity_checks

    def validate(self) -> None:
        require(self.n >= 1, f"n: must be ≥ 1, got {self.n}")
        require(self.batch_size >= 1, f"batch_size: must be ≥ 1, got {self.batch_size}")
        for i, spec in enumerate(self.attacks):
            spec.check(f"attacks[{i}]")
            require(spec.n is None or spec.n <= self.n,
                    f"attacks[{i}].n: {spec.n} exceeds the evaluation's n = {self.n}")
        for i, intervention in enumerate(self.interventions):
            intervention.check(f"interventions[{i}]")
        if not isinstance(self.sanity_checks, bool):
            unknown = sorted(set(self.sanity_checks) - {a.attack for a in self.attacks})
            if unknown:
                raise ConfigError(f"sanity_checks: {unknown[0]!r} is not one of this "
                                  "evaluation's attacks")
        keys = [(a.attack, a.norm, sorted(a.options.items())) for a in self.attacks]
        for i, key in enumerate(keys):
            require(key not in keys[:i], f"attacks[{i}]: repeats an earlier attack (same attack, norm, options)")


@dataclass
class Resources:
    """What one run asks of an executor (Ray: task resources; local: informational)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def validate(self) -> None:
        require(self.num_cpus > 0, f"num_cpus: must be > 0, got {self.num_cpus}")
        require(self.num_gpus >= 0, f"num_gpus: must be ≥ 0, got {self.num_gpus}")


# Fields of RunConfig that describe how/where a run executes, not what it computes: they are
# left out of the run id (so relabelling a study or moving it to a GPU box keeps its results).
EXECUTION_FIELDS = ("study", "variant", "label", "resources", "save_checkpoints", "output_dir")


@dataclass
class RunConfig:
    """One fully resolved run: train ``model`` on ``dataset`` with ``train``, then evaluate."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    model: str = "mlp"
    model_options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(track_structure=True, progress=False))
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    # execution-only (see EXECUTION_FIELDS)
    study: str = ""
    variant: str = ""
    label: str = ""
    resources: Resources = field(default_factory=Resources)
    save_checkpoints: bool = False
    output_dir: str | None = None  # checkpoints go to <output_dir>/checkpoints/<run_id>/

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def method(self) -> str:
        """The registered name of the training method (``train.method.name``)."""
        return self.train.method.name

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(
                f"dataset: unknown dataset {self.dataset!r}{closest(self.dataset, list(DATASETS))}; "
                f"choose from {', '.join(DATASETS)}"
            )
        if self.model not in MODELS:
            raise ConfigError(
                f"model: unknown model {self.model!r}{closest(self.model, list(MODELS))}; "
                f"choose from {', '.join(MODELS)}"
            )
        allowed = [o for o in model_options(self.model) if o not in ("mean", "std")]
        for key in self.model_options:
            if key not in allowed:
                raise ConfigError(
                    f"unknown key 'model_options.{key}' for model {self.model!r}"
                    f"{closest(str(key), allowed)}; options: {', '.join(allowed) or '(none)'}"
                )
        info = dataset_info(self.dataset)  # sizes checked on the meta device: no memory spent
        state_shapes(self.model, info.in_shape, info.num_classes, **self.model_options)
        method = self.train.method
        if hasattr(method, "layers") or type(method).check_model is not TrainingMethod.check_model:
            # a method that would change nothing is refused before any run starts
            meta = meta_model(self.model, info.in_shape, info.num_classes, **self.model_options)
            try:
                method.check_model(meta)
            except ConfigError as exc:
                raise ConfigError(f"train.method: {exc}") from None


MAX_STUDY_BYTES = 256 * 1024  # a study file is a few KB; parsing is ~4 µs/byte


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
    """``seeds`` if it is a non-empty list of distinct integers in 0..2⁶³−1, else ConfigError."""
    require(isinstance(seeds, list) and bool(seeds),
            f"{where}: expected a non-empty list of integers in 0..2**63-1, got {brief(seeds)}")
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


def _check_plain(value: Any, where: str) -> None:
    """ConfigError naming the dotted path of the first value that is not plain JSON-like data."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where or 'study'}: key {brief(key)} is not a name (a string)")
            _check_plain(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise ConfigError(f"{where}: a {type(value).__name__} value is not allowed here "
                          f"({brief(value)}); quote it to make it a string")


def parse_study_yaml(text: str, where: str) -> Any:
    """The plain data of a study file's text (see the module docstring); ConfigError otherwise."""
    data = load_yaml(text, where)
    if data is None or data == {}:
        raise ConfigError(f"{where}: the study file is empty (write at least a 'name:' or a 'grid:')")
    try:
        _check_plain(data, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return data


def load_study(path: str | os.PathLike[str]) -> StudyConfig:
    """Read and validate a study YAML file (its file stem is the default study name)."""
    p = Path(path)
    if not os.path.lexists(p):
        raise ConfigError(f"study file not found: {p}")
    raw = read_regular(p, MAX_STUDY_BYTES, ConfigError, "study file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    return study_from_dict(parse_study_yaml(text, str(p)), default_name=p.stem)


def _prefix(exc: ConfigError, section: str) -> str:
    """Give validate() messages (which lack a path) the section they come from."""
    msg = str(exc)
    if msg.startswith(("unknown key", f"{section}.", f"{section}:", f"{section}[")):
        return msg
    if re.match(r"^[\w\[\]\.]+: ", msg):  # "attacks[0].epsilons: ..." → "evaluation.attacks[0]..."
        return f"{section}.{msg}"
    return f"{section}: {msg}"


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """A validated RunConfig; every error names its dotted path (e.g. ``train.lr``)."""
    data = dict(data)
    sections: dict[str, Any] = {}
    for section, cls in (("train", TrainConfig), ("evaluation", EvaluationConfig), ("resources", Resources)):
        if section in data:
            if not isinstance(data[section], dict):
                raise ConfigError(f"{section}: expected a mapping, got {data[section]!r}")
            given = data.pop(section)
            if section == "train":  # sweeps track structure and hide per-run bars by default
                given = {"track_structure": True, "progress": False, **given}
            try:
                sections[section] = from_dict(cls, given, section)
            except ConfigError as exc:
                raise ConfigError(_prefix(exc, section)) from None
    if "train" not in sections:
        sections["train"] = TrainConfig(track_structure=True, progress=False)
    config = from_dict(RunConfig, data)
    for key, value in sections.items():
        setattr(config, key, value)
    config.validate()
    return config
