"""Structure-promoting regularizers on (module, parameter) pairs: ℓ1, nuclear norm, product-ℓ1.

Pure tensor functions (penalties, subgradients, proximal operators) and the weight selection;
they know nothing of training. ``rankrobust.training.regularization`` applies them in the loop.
"""

from rankrobust.regularizers.l1 import l1_penalty, soft_threshold, soft_threshold_
from rankrobust.regularizers.nuclear import (
    nuclear_norm,
    nuclear_penalty,
    polar_factor,
    polar_factor_with_norm,
    singular_value_threshold,
    singular_value_threshold_with_norm,
)
from rankrobust.regularizers.product import product_l1_penalty, weight_product
from rankrobust.regularizers.selection import WeightRef, as_matrix, select_weights

__all__ = [
    "WeightRef",
    "as_matrix",
    "l1_penalty",
    "nuclear_norm",
    "nuclear_penalty",
    "polar_factor",
    "polar_factor_with_norm",
    "product_l1_penalty",
    "select_weights",
    "singular_value_threshold",
    "singular_value_threshold_with_norm",
    "soft_threshold",
    "soft_threshold_",
    "weight_product",
]
