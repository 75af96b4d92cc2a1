"""Training methods as registered objects: one module per method, everything else reads the registry.

A method is a frozen dataclass (its parameters, validated once) with class attributes naming it
and hooks that change training (see :mod:`rankrobust.methods.base`). To add one, write a module
with a ``@register``-ed subclass of :class:`TrainingMethod`; the CLI (``--method NAME --set
key=value``), study YAML (``train.method: {name: ..., ...}``), the results store and the report
read it from :data:`METHODS`. Registry order (this file's import order) is display order.
"""

# Imported to register them, in display order (so the import is not sorted).
from rankrobust.methods import (  # noqa: F401, I001
    natural,
    fgsm_adv,
    fgsm_rs,
    pgd_adv,
    trades,
    l1,
    nuclear,
    l1_nuclear,
    product_l1,
    lowrank,
    weight_decay,
    spectral_norm,
)
from rankrobust.methods.base import (
    KINDS,
    METHODS,
    Objective,
    Penalty,
    StepInfo,
    TrainingMethod,
    get_method,
    method_from_config,
    natural_objective,
    register,
)

__all__ = [
    "KINDS",
    "METHODS",
    "Objective",
    "Penalty",
    "StepInfo",
    "TrainingMethod",
    "get_method",
    "method_from_config",
    "natural_objective",
    "register",
]
