"""Robustness measurement built from the attacks: fooling-ratio curves over ε, DeepFool's
ρ_adv, and sanity checks against gradient masking."""

from rankrobust.robustness.curves import (
           Curve,
           fooling_ratio_curve,
           rho_adv,
           robustness_curve,
)
from rankrobust.robustness.sanity import noise_fooling_ratio, sanity_checks

__all__ = ["Curve", "fooling_ratio_curve", "noise_fooling_ratio", "rho_adv",
           "robustness_curve", "sanity_checks"]
