"""Run configs: strict schemas on top of :func:`rankrobust.configuration.from_dict`.

A *run config* (:class:`RunConfig`) is everything one training + evaluation needs: dataset, model
and its options, the full :class:`~rankrobust.training.TrainConfig` (seed included), the
evaluation (attacks × ε lists, DeepFool ρ_adv, spectra) and execution-only fields (resources,
checkpointing, labels) that do not enter the run id.

Every config checks itself once, at construction (``__post_init__``, one :func:`require` per
rule); :func:`~rankrobust.configuration.from_dict` puts the field's dotted path in front of its
messages (``evaluation.attacks[0].n: must be ≥ 1``). Studies (grids of run configs) are parsed
in :mod:`rankrobust.experiments.study_config`, study files read in
:mod:`rankrobust.experiments.study_file`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from rankrobust.attacks.registry import AttackName, get_attack
from rankrobust.configuration import brief, check_seed, closest, from_dict, require
from rankrobust.data import DATASETS, dataset_info
from rankrobust.errors import ConfigError
from rankrobust.interventions import INTERVENTIONS
from rankrobust.methods import TrainingMethod
from rankrobust.models import MODELS
from rankrobust.models.registry import meta_model, model_options, state_shapes
from rankrobust.training.config import TrainConfig
from rankrobust.work_args import check_levels


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

    def __post_init__(self) -> None:
        require(self.n is None or self.n >= 1, f"n: must be ≥ 1, got {self.n}")
        eps = list(self.epsilons)
        require(len(eps) > 0, "epsilons: list at least one budget")
        check_levels(eps, "epsilons")
        require(all(e >= 0 and math.isfinite(e) for e in eps),
                f"epsilons: budgets must be finite numbers ≥ 0, got {eps}")
        require(len(set(eps)) == len(eps), f"epsilons: duplicate budgets in {eps}")
        if "seed" in self.options:
            check_seed(self.options["seed"], "options.seed")
        get_attack(self.attack).check_spec(self.norm, self.options, "")
        grid, bisect = self.options.get("grid", False), self.options.get("bisect", 0)
        require(isinstance(grid, bool), f"options.grid: true or false, got {brief(grid)}")
        require(not isinstance(bisect, bool) and isinstance(bisect, int) and 0 <= bisect <= 20,
                f"options.bisect: an integer in 0..20, got {brief(bisect)}")


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

    def __post_init__(self) -> None:
        require(self.kind in INTERVENTIONS, f"kind: unknown intervention {self.kind!r}"
                f"{closest(self.kind, list(INTERVENTIONS))}; choose from {', '.join(INTERVENTIONS)}")
        keeps = list(self.keeps)
        check_levels(keeps, "keeps")
        require(len(keeps) > 0 and all(math.isfinite(k) and 0 < k <= 1 for k in keeps),
                f"keeps: shares in (0, 1], got {keeps}")
        require(len(set(keeps)) == len(keeps), f"keeps: duplicate shares in {keeps}")
        require(math.isfinite(self.eps) and self.eps >= 0, f"eps: a budget ≥ 0, got {self.eps}")
        require(not self.per_layer or INTERVENTIONS[self.kind].per_layer,
                f"per_layer: {self.kind!r} has no per-layer form")
        if "seed" in self.options:
            check_seed(self.options["seed"], "options.seed")
        get_attack(self.attack).check_spec(self.norm, self.options, "")

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

    def __post_init__(self) -> None:
        require(self.n >= 1, f"n: must be ≥ 1, got {self.n}")
        require(self.batch_size >= 1, f"batch_size: must be ≥ 1, got {self.batch_size}")
        for i, spec in enumerate(self.attacks):
            require(spec.n is None or spec.n <= self.n,
                    f"attacks[{i}].n: {spec.n} exceeds the evaluation's n = {self.n}")
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

    def __post_init__(self) -> None:
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

    def __post_init__(self) -> None:
        require(self.dataset in DATASETS,
                f"dataset: unknown dataset {self.dataset!r}{closest(self.dataset, list(DATASETS))}; "
                f"choose from {', '.join(DATASETS)}")
        require(self.model in MODELS,
                f"model: unknown model {self.model!r}{closest(self.model, list(MODELS))}; "
                f"choose from {', '.join(MODELS)}")
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


def run_config_from_dict(data: dict[str, Any]) -> RunConfig:
    """A validated RunConfig; every error names its dotted path (e.g. ``train.lr``). The
    ``train`` section defaults to tracking structure without per-run progress bars (sweeps)."""
    sections = ("train", "evaluation", "resources")  # parsed first, in this order
    data = {**{k: data[k] for k in sections if k in data}, **data}
    train = data.get("train", {})
    if isinstance(train, dict):
        data["train"] = {"track_structure": True, "progress": False, **train}
    for section in sections:
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(f"{section}: expected a mapping, got {data[section]!r}")
    return from_dict(RunConfig, data)
