"""The evaluation section of a study: per-attack point counts and which curves get sanity checks."""

from __future__ import annotations

import pytest

from rankrobust.configuration import from_dict, to_dict
from rankrobust.errors import ConfigError
from rankrobust.experiments.config import AttackSpec, EvaluationConfig

PGD = {"attack": "pgd", "epsilons": [0.1, 0.2]}
AA = {"attack": "autoattack", "epsilons": [0.1], "n": 50}


def test_attack_n_is_optional_and_absent_from_the_config_when_unset() -> None:
    """Run ids hash the config: a spec without ``n`` must serialize as before the field existed."""
    assert "n" not in to_dict(from_dict(AttackSpec, PGD))
    assert to_dict(from_dict(AttackSpec, AA))["n"] == 50


def test_attack_n_must_fit_the_evaluation() -> None:
    ok = from_dict(EvaluationConfig, {"n": 100, "attacks": [PGD, AA]})
    assert ok.attacks[1].n == 50
    with pytest.raises(ConfigError, match=r"attacks\[1\]\.n: 500 exceeds the evaluation's n = 100"):
        from_dict(EvaluationConfig, {"n": 100, "attacks": [PGD, {**AA, "n": 500}]})
    with pytest.raises(ConfigError, match=r"attacks\[0\]\.n: must be ≥ 1"):
        from_dict(EvaluationConfig, {"attacks": [{**PGD, "n": 0}]})


def test_sanity_checks_take_a_bool_or_the_attacks_to_check() -> None:
    listed = from_dict(EvaluationConfig, {"attacks": [PGD, AA], "sanity_checks": ["autoattack"]})
    assert listed.checks("autoattack") and not listed.checks("pgd")
    everything = from_dict(EvaluationConfig, {"attacks": [PGD], "sanity_checks": True})
    assert everything.checks("pgd")
    assert not from_dict(EvaluationConfig, {"attacks": [PGD]}).checks("pgd")
    with pytest.raises(ConfigError, match="sanity_checks: 'fgsm' is not one of this evaluation's attacks"):
        from_dict(EvaluationConfig, {"attacks": [PGD], "sanity_checks": ["fgsm"]})
    with pytest.raises(ConfigError, match="sanity_checks"):
        from_dict(EvaluationConfig, {"attacks": [PGD], "sanity_checks": "pgd"})
