"""Adversarial attacks on models with inputs in ``bounds`` (default [0, 1]).

Single-budget primitives (used by adversarial training; they do not switch the model's mode):
``fgsm_perturb``, ``pgd_perturb``, both on the shared pieces of :mod:`.perturb` (the one PGD
loop ``pgd_run``, the one ε-ball sampler ``random_in_ball``, an optional ``loss_fn``). Evaluation
attacks (eval mode, mode restored, a list of budgets → success (K, N)): ``fgsm``, ``pgd``,
``apgd``, ``square`` (gradient-free) and the ensemble ``autoattack``; minimal perturbations:
``deepfool``. torchattacks-shaped classes over them (:mod:`.torchattacks_api`): ``PGD``,
``APGD``, ``APGDT``, ``Square``, ``AutoAttack``, each ``Cls(model, eps=..., ...)(x, y) -> x_adv``
with torchattacks' defaults.

The registry (:mod:`.registry`): ``ATTACKS[name]`` is everything the rest of the package knows
about an evaluation attack; ``register_attack`` adds one (the built-ins: :mod:`.builtin`).
"""

from rankrobust.attacks import builtin as _builtin  # noqa: F401  (registers the built-ins)
from rankrobust.attacks.apgd import apgd
from rankrobust.attacks.autoattack import EnsembleResult, autoattack
from rankrobust.attacks.base import AttackResult, MinimalResult, eval_mode
from rankrobust.attacks.deepfool import deepfool
from rankrobust.attacks.fgsm import fgsm
from rankrobust.attacks.perturb import fgsm_perturb, input_gradient, pgd_perturb, project
from rankrobust.attacks.pgd import pgd
from rankrobust.attacks.registry import ATTACKS, FORWARD, Attack, get_attack, register_attack
from rankrobust.attacks.square import square
from rankrobust.attacks.torchattacks_api import APGD, APGDT, PGD, AutoAttack, Square

__all__ = [
    "ATTACKS",
    "FORWARD",
    "Attack",
    "get_attack",
    "register_attack",
    "APGD",
    "APGDT",
    "PGD",
    "AutoAttack",
    "Square",
    "AttackResult",
    "EnsembleResult",
    "MinimalResult",
    "apgd",
    "autoattack",
    "deepfool",
    "eval_mode",
    "fgsm",
    "fgsm_perturb",
    "input_gradient",
    "pgd",
    "pgd_perturb",
    "project",
    "square",
]
