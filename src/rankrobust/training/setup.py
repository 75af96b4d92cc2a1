"""Turn a TrainConfig into the loop's objective and callbacks (the one place that composes)."""

from __future__ import annotations

from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.training.callbacks import Callback
from rankrobust.training.config import TrainConfig
from rankrobust.training.objectives import Objective, natural_objective


def build_objective(config: TrainConfig) -> Objective:
    """Natural cross-entropy, or the adversarial objective that ``config.adversarial`` names."""
    if config.adversarial.kind == "none":
        return natural_objective
    raise ConfigError(f"adversarial training {config.adversarial.kind!r} is not available yet")


def build_callbacks(model: nn.Module, config: TrainConfig) -> list[Callback]:
    """Regularizer and structure-tracking callbacks that ``config`` asks for."""
    callbacks: list[Callback] = []
    if config.regularizer.kind != "none":
        raise ConfigError(f"regularizer {config.regularizer.kind!r} is not available yet")
    if config.track_structure:
        raise ConfigError("structure tracking is not available yet")
    return callbacks
