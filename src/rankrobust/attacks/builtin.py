"""The built-in evaluation attacks, registered in :mod:`.registry` (imported by the package).

Each runner attacks one batch at a list of budgets without keeping adversarial examples
(``keep_adv=False``). Costs per input (K budgets, C classes; :mod:`rankrobust.work`):

====================  ==========================================================
fgsm                  1 + K·FORWARD (one gradient serves every budget)
pgd                   K · restarts · (steps + FORWARD)
apgd-ce, apgd-dlr     K · restarts · steps
apgd-t                K · restarts · steps · min(n_targets, C − 1)
square                K · n_queries · FORWARD
autoattack            the sum of its members (apgd-ce, apgd-t, square)
deepfool              max_iter · C (one gradient per class and iteration), for all budgets
====================  ==========================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from rankrobust.attacks.apgd import apgd
from rankrobust.attacks.autoattack import MEMBERS, autoattack
from rankrobust.attacks.base import AttackResult
from rankrobust.attacks.deepfool import deepfool
from rankrobust.attacks.fgsm import fgsm
from rankrobust.attacks.pgd import pgd
from rankrobust.attacks.registry import ATTACKS, FORWARD, count, register_attack
from rankrobust.attacks.square import square

Tensor = torch.Tensor
Gen = torch.Generator
# parameters of the attack functions that are never options: the runner sets them
FIXED = frozenset({"model", "x", "y", "epsilons", "norm", "generator", "keep_adv", "seed", "loss"})
ADAPTIVE = "adaptive (2*eps at first)"  # APGD's step size, as the settings show it


def defaults(function: Callable[..., Any], *skip: str) -> dict[str, Any]:
    """The options of an attack function: its parameters with defaults, less :data:`FIXED`."""
    return {p.name: p.default for p in inspect.signature(function).parameters.values()
            if p.default is not p.empty and p.name not in FIXED and p.name not in skip}


def _targets(options: Mapping[str, Any], classes: int) -> float:
    return min(count(options, "n_targets"), max(1, classes - 1))


@register_attack(
    "fgsm", label="FGSM", options=defaults(fgsm), strength=10, nests=True, norm_labels={"2": "FGM"},
    passes=lambda k, c, o: 1.0 + k * FORWARD,
    description="FGSM (ℓ∞) / FGM (ℓ2): one gradient step of size ε")
def run_fgsm(model: nn.Module, x: Tensor, labels: Tensor, epsilons: list[float], norm: str,
             generator: Gen, **options: Any) -> AttackResult:
    return fgsm(model, x, labels, epsilons, norm=norm, keep_adv=False, **options)


@register_attack(
    "pgd", label="PGD", options=defaults(pgd), strength=20, random=True, nests=True, iterative=True,
    beats_single_step=True, settings={"step_size": "2.5*eps/steps"},
    passes=lambda k, c, o: k * count(o, "restarts") * (count(o, "steps") + FORWARD),
    description="PGD with random starts and restarts (Madry et al. 2018)")
def run_pgd(model: nn.Module, x: Tensor, labels: Tensor, epsilons: list[float], norm: str,
            generator: Gen, **options: Any) -> AttackResult:
    return pgd(model, x, labels, epsilons, norm=norm, generator=generator, keep_adv=False,
               **options)


def _apgd(loss: str) -> Callable[..., AttackResult]:
    def run(model: nn.Module, x: Tensor, labels: Tensor, epsilons: list[float], norm: str,
            generator: Gen, **options: Any) -> AttackResult:
        return apgd(model, x, labels, epsilons, norm=norm, loss=loss, generator=generator,
                    keep_adv=False, **options)

    return run


_APGD = dict(random=True, nests=True, iterative=True, beats_single_step=True)
register_attack(
    "apgd-ce", label="APGD-CE", options=defaults(apgd, "n_targets"), strength=30, **_APGD,
    settings={"loss": "ce", "step_size": ADAPTIVE},
    passes=lambda k, c, o: k * count(o, "restarts") * count(o, "steps"),
    description="APGD on cross-entropy (Croce & Hein 2020)")(_apgd("ce"))
register_attack(
    "apgd-dlr", label="APGD-DLR", options=defaults(apgd, "n_targets"), **_APGD,
    settings={"loss": "dlr", "step_size": ADAPTIVE},
    passes=lambda k, c, o: k * count(o, "restarts") * count(o, "steps"),
    description="APGD on the DLR loss")(_apgd("dlr"))
register_attack(
    "apgd-t", label="APGD-T", options=defaults(apgd), strength=40, **_APGD,
    settings={"loss": "dlr-targeted", "step_size": ADAPTIVE},
    passes=lambda k, c, o: k * count(o, "restarts") * count(o, "steps") * _targets(o, c),
    description="APGD on the targeted DLR loss, one run per target class")(_apgd("dlr-targeted"))


@register_attack(
    "square", label="Square", options=defaults(square), random=True, nests=True,
    beats_single_step=True,
    passes=lambda k, c, o: k * count(o, "n_queries") * FORWARD,
    description="Square Attack: gradient-free random search (Andriushchenko et al. 2020)")
def run_square(model: nn.Module, x: Tensor, labels: Tensor, epsilons: list[float], norm: str,
               generator: Gen, **options: Any) -> AttackResult:
    return square(model, x, labels, epsilons, norm=norm, generator=generator, keep_adv=False,
                  **options)


def _autoattack_passes(k: float, classes: int, options: Mapping[str, Any]) -> float:
    """K · Σ over the members of one member's passes at one budget, at AutoAttack's settings."""
    members = options.get("members")
    names = [str(m) for m in members] if isinstance(members, (list, tuple)) else []
    per = {m: ATTACKS[m].passes(1.0, classes, options) for m in MEMBERS}
    return k * sum(per.get(m, 0.0) for m in names)


@register_attack(
    "autoattack", label="AutoAttack", options=defaults(autoattack), strength=50, random=True,
    nests=True, ensemble=True, per_point=True, iterative=True, beats_single_step=True,
    settings={"step_size": ADAPTIVE}, passes=_autoattack_passes,
    description="APGD-CE → APGD-T → Square, each on the inputs the earlier ones left, with a "
    "broken_by column (grid: the ε-grid schedule; bisect: refined minimal budgets)")
def run_autoattack(model: nn.Module, x: Tensor, labels: Tensor, epsilons: list[float], norm: str,
                   generator: Gen, **options: Any) -> AttackResult:
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return autoattack(model, x, labels, epsilons, norm=norm, seed=seed, keep_adv=False, **options)


@register_attack(
    "deepfool", label="DeepFool", options=defaults(deepfool), nests=True,
    passes=lambda k, c, o: count(o, "max_iter") * c,
    description="DeepFool's minimal perturbation: success at ε iff ‖r‖ ≤ ε")
def run_deepfool(model: nn.Module, x: Tensor, labels: Tensor, epsilons: list[float], norm: str,
                 generator: Gen, **options: Any) -> AttackResult:
    success = deepfool(model, x, labels, norm=norm, **options).success_at(epsilons)
    return AttackResult(list(epsilons), norm, success, None)
