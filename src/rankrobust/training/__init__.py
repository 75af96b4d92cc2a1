"""Training: the loop, its config, callbacks and objectives (the one place that composes)."""

from rankrobust.training.callbacks import Callback, TrainState
from rankrobust.training.config import AdversarialConfig, RegularizerConfig, TrainConfig
from rankrobust.training.evaluate import evaluate, predict
from rankrobust.training.loop import TrainResult, train
from rankrobust.training.objectives import Objective, natural_objective
from rankrobust.training.seeding import seed_everything

__all__ = [
    "AdversarialConfig",
    "Callback",
    "Objective",
    "RegularizerConfig",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "evaluate",
    "natural_objective",
    "predict",
    "seed_everything",
    "train",
]
