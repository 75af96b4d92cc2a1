"""Turn a TrainConfig into the loop's objective and callbacks (the one place that composes)."""

from __future__ import annotations

from torch import nn

from rankrobust.training.callbacks import Callback
from rankrobust.training.config import TrainConfig
from rankrobust.training.objectives import Objective, natural_objective


def build_objective(config: TrainConfig) -> Objective:
    """Natural cross-entropy, or the adversarial objective that ``config.adversarial`` names."""
    if config.adversarial.kind == "none":
        return natural_objective
    from rankrobust.training.adversarial import adversarial_objective

    return adversarial_objective(config.adversarial, config.seed)


def build_callbacks(model: nn.Module, config: TrainConfig) -> list[Callback]:
    """Regularizer and structure-tracking callbacks that ``config`` asks for."""
    callbacks: list[Callback] = []
    if config.regularizer.kind != "none":
        from rankrobust.training.regularization import regularizer_callbacks

        callbacks += regularizer_callbacks(model, config.regularizer)
    if config.track_structure:
        from rankrobust.training.structure_tracking import StructureTracker

        callbacks.append(StructureTracker())  # records epoch 0 (init) and every epoch's end
    return callbacks
