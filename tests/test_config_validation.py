"""One validation idiom: every config checks itself once, at construction (``__post_init__``),
and ``from_dict`` puts the field's dotted path in front of the message; each rule lives once."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rankrobust.configuration import from_dict
from rankrobust.errors import ConfigError
from rankrobust.experiments.config import (
    AttackSpec,
    EvaluationConfig,
    InterventionSpec,
    Resources,
    RunConfig,
    run_config_from_dict,
)
from rankrobust.training.config import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "rankrobust"
CHECKED = (RunConfig, TrainConfig, EvaluationConfig, AttackSpec, InterventionSpec, Resources)
RUN = {"dataset": "synthetic", "model": "mlp", "train": {"epochs": 1, "seed": 3},
       "evaluation": {"n": 8, "attacks": [{"attack": "fgsm", "epsilons": [0.1]}],
                      "interventions": [{"kind": "svd", "keeps": [0.5, 1.0]}]},
       "resources": {"num_cpus": 1}}


def test_each_config_is_checked_exactly_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counts: Counter[str] = Counter()
    for cls in CHECKED:
        def spy(self: Any, _check: Any = cls.__post_init__, _name: str = cls.__name__) -> None:
            counts[_name] += 1
            _check(self)

        monkeypatch.setattr(cls, "__post_init__", spy)
    config = run_config_from_dict(RUN)
    assert config.seed == 3 and config.evaluation.attacks[0].epsilons == (0.1,)
    assert counts == {cls.__name__: 1 for cls in CHECKED}


@pytest.mark.parametrize(("build", "message"), [
    (lambda: AttackSpec(epsilons=()), "epsilons: list at least one budget"),
    (lambda: AttackSpec(options={"seed": -1}), "options.seed: a seed must be an integer in 0..2**63-1"),
    (lambda: InterventionSpec(kind="svdd"), "kind: unknown intervention 'svdd' (did you mean 'svd'?)"),
    (lambda: EvaluationConfig(n=4, attacks=(AttackSpec(n=5),)), "attacks[0].n: 5 exceeds the evaluation's n = 4"),
    (lambda: Resources(num_cpus=0), "num_cpus: must be > 0, got 0"),
    (lambda: RunConfig(dataset="mnist55"), "dataset: unknown dataset 'mnist55'"),
])
def test_a_config_built_in_python_is_checked_too(build: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build()


@pytest.mark.parametrize(("data", "where", "message"), [
    ({"attacks": [{"epsilons": [0.1]}, {"epsilons": [-1.0]}]}, "",
     "attacks[1].epsilons: budgets must be finite numbers ≥ 0"),
    ({"epsilons": [0.1], "options": {"bisect": 3}}, "evaluation.attacks[2]",
     "evaluation.attacks[2].options.bisect: only autoattack takes it, not fgsm"),
    ({"num_cpus": 1, "num_gpus": -1}, "resources", "resources.num_gpus: must be ≥ 0"),
])
def test_from_dict_names_the_dotted_path(data: dict[str, Any], where: str, message: str) -> None:
    cls = {"": EvaluationConfig, "resources": Resources}.get(where, AttackSpec)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        from_dict(cls, data, where)


def test_method_checks_keep_the_method_name() -> None:
    with pytest.raises(ConfigError, match=r"^train\.method \(l1\): "):
        run_config_from_dict({**RUN, "train": {"method": {"name": "l1", "lambda_l1": -1.0}}})
    with pytest.raises(ConfigError, match=r"^train: epochs must be ≥ 1, got 0"):
        run_config_from_dict({**RUN, "train": {"epochs": 0}})


def test_the_seed_rule_lives_once() -> None:
    """MAX_SEED and its range are defined in rankrobust.configuration only (check_seed)."""
    holders = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                     if re.search(r"2\s*\*\*\s*63", p.read_text(encoding="utf-8")))
    assert holders == ["configuration.py"]
    assert not [p for p in SRC.rglob("*.py") if p.name != "configuration.py"
                and re.search(r"^MAX_SEED\s*=", p.read_text(encoding="utf-8"), re.M)]
