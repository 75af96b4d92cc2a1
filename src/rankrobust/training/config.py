"""Training configuration: loop hyper-parameters plus the training method (see ``rankrobust.methods``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from rankrobust.configuration import check_seed, require
from rankrobust.methods import TrainingMethod
from rankrobust.methods.natural import Natural


@dataclass
class TrainConfig:
    """Optimizer, schedule, loop settings and the method; validated once, at construction.

    Same config and seed give the same numbers on CPU. ``method`` is any registered
    :class:`~rankrobust.methods.TrainingMethod` (in YAML/JSON: ``{name: ..., param: value}``).
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = 2e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    lr_step_epochs: int = 10  # "step": multiply by lr_gamma every this many epochs
    lr_gamma: float = 0.1
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 1000
    track_structure: bool = False
    progress: bool = True
    # Training examples held out for model selection (e.g. the report's λ rule): the same
    # examples for every seed and method (a fixed permutation), never trained on.
    validation_size: int = 0
    method: TrainingMethod = field(default_factory=Natural)

    def __post_init__(self) -> None:
        require(self.epochs >= 1, f"epochs must be ≥ 1, got {self.epochs}")
        check_seed(self.seed, "seed")
        require(self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}")
        require(self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, "momentum must be in [0, 1)")
        require(self.weight_decay >= 0 and math.isfinite(self.weight_decay), "weight_decay must be ≥ 0")
        require(self.lr_step_epochs >= 1 and 0 < self.lr_gamma <= 1, "lr_step_epochs ≥ 1, 0 < lr_gamma ≤ 1")
        require(self.eval_batch_size >= 1, "eval_batch_size must be ≥ 1")
        require(self.validation_size >= 0, f"validation_size must be ≥ 0, got {self.validation_size}")
        require(isinstance(self.method, TrainingMethod),
                f"method must be a registered training method, got {self.method!r}")
