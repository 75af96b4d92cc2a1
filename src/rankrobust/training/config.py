"""Training configuration: loop hyper-parameters plus the training method (see ``rankrobust.methods``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from rankrobust.configuration import check_seed, require
from rankrobust.methods import TrainingMethod
from rankrobust.methods.natural import Natural

SELECT_KEYS = ("last", "val_acc", "val_robust_acc")
# Fields added after the first studies: stored in a config only when set, so that the run ids of
# the studies that did not know them stay as they were.
LATER_FIELDS = {"select_epoch": "last", "val_attack_steps": 10, "val_attack_n": 1000,
                "train_size": 0}


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
    # Train on a fixed class-stratified subset of this many of the remaining training examples
    # (0: all of them); the same subset for every seed and method (training.fit.split_data).
    train_size: int = 0
    method: TrainingMethod = field(default_factory=Natural)
    # Keep the epoch with the best validation metric ("val_acc", or "val_robust_acc": PGD at the
    # method's training ε) instead of the last one (rankrobust.training.selection).
    select_epoch: Literal["last", "val_acc", "val_robust_acc"] = "last"
    val_attack_steps: int = 10  # PGD steps of val_robust_acc
    val_attack_n: int = 1000  # validation points val_robust_acc attacks (the first ones)

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
        require(self.select_epoch in SELECT_KEYS,
                f"select_epoch must be one of {', '.join(SELECT_KEYS)}, got {self.select_epoch!r}")
        require(self.select_epoch == "last" or self.validation_size > 0,
                f"select_epoch {self.select_epoch!r} selects on the validation split: "
                "set validation_size > 0")
        require(self.select_epoch != "val_robust_acc" or self.robust_eps is not None,
                f"select_epoch 'val_robust_acc' needs a method with a training eps, "
                f"not {self.method.name!r}")
        require(self.train_size >= 0, f"train_size must be ≥ 0, got {self.train_size}")
        require(self.val_attack_steps >= 1, f"val_attack_steps must be ≥ 1, got {self.val_attack_steps}")
        require(self.val_attack_n >= 1, f"val_attack_n must be ≥ 1, got {self.val_attack_n}")

    def training_images(self, available: int) -> int:
        """The images an epoch trains on out of a training split of ``available``: what
        ``validation_size`` leaves, or ``train_size`` of them when set (``fit.split_data``)."""
        left = max(0, available - self.validation_size)
        return min(self.train_size, left) if self.train_size > 0 else left

    @property
    def robust_eps(self) -> float | None:
        """The method's training ε (adversarial methods, TRADES), else None."""
        eps = getattr(self.method, "eps", None)
        return float(eps) if isinstance(eps, (int, float)) and eps > 0 else None

    def to_config(self) -> dict[str, Any]:
        """Every field as plain data, except :data:`LATER_FIELDS` left at their defaults."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, default in LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return data
