"""Training: the loop, its config and callbacks (the one place that composes a method's hooks)."""

from rankrobust.methods import Objective, natural_objective
from rankrobust.training.callbacks import Callback, TrainState
from rankrobust.training.config import TrainConfig
from rankrobust.training.evaluate import evaluate, predict
from rankrobust.training.loop import TrainResult, train
from rankrobust.training.seeding import seed_everything

__all__ = [
    "Callback",
    "Objective",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "evaluate",
    "natural_objective",
    "predict",
    "seed_everything",
    "train",
]
