"""Networks: ``build_model(name, in_shape, num_classes, **options)``; inputs always in [0, 1]."""

from rankrobust.models.adapter import ModelAdapter, Normalization
from rankrobust.models.cnn_small import CNNSmall
from rankrobust.models.lenet import LeNet5
from rankrobust.models.mlp import MLP
from rankrobust.models.normalize import Normalize
from rankrobust.models.registry import (
    MAX_PARAMETERS,
    MODELS,
    ModelSpec,
    build_model,
    check_model,
    model_family,
    model_options,
    parameter_count,
    state_shapes,
)

__all__ = ["MAX_PARAMETERS", "MLP", "MODELS", "ModelAdapter", "ModelSpec", "CNNSmall", "LeNet5",
           "Normalization", "Normalize", "build_model", "check_model", "model_family",
           "model_options", "parameter_count", "state_shapes"]
