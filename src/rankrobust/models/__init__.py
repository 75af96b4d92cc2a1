"""Networks: ``build_model(name, in_shape, num_classes, **options)``; inputs always in [0, 1].

Every module of this package is imported here, and each model module registers its builders
with :func:`register_model` (see :mod:`rankrobust.models.registry`): a new model is one new file.
"""

from rankrobust.models.adapter import ModelAdapter, Normalization
from rankrobust.models.cnn_small import CNNSmall
from rankrobust.models.lenet import LeNet5
from rankrobust.models.mlp import MLP
from rankrobust.models.normalize import Normalize
from rankrobust.models.registry import (
    FAMILIES,
    MAX_PARAMETERS,
    MODELS,
    ModelEntry,
    ModelSpec,
    build_model,
    check_model,
    default_models,
    get_model,
    model_family,
    model_options,
    parameter_count,
    register_model,
    state_shapes,
)
from rankrobust.registries import import_plugins, import_submodules

import_submodules(__name__, __path__)
import_plugins()

__all__ = ["FAMILIES", "MAX_PARAMETERS", "MLP", "MODELS", "ModelAdapter", "ModelEntry", "ModelSpec",
           "CNNSmall", "LeNet5", "Normalization", "Normalize", "build_model", "check_model",
           "default_models", "get_model", "model_family", "model_options", "parameter_count",
           "register_model", "state_shapes"]
