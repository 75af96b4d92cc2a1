"""Adversarial attacks on models with inputs in ``bounds`` (default [0, 1])."""

from rankrobust.attacks.perturb import fgsm_perturb, input_gradient, pgd_perturb, project

__all__ = ["fgsm_perturb", "input_gradient", "pgd_perturb", "project"]
