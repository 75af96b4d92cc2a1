"""Training configuration: loop hyper-parameters plus the regularizer and adversarial options."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from rankrobust.configuration import require

RegularizerKind = Literal["none", "l1", "nuclear", "l1+nuclear", "product-l1"]
AdversarialKind = Literal["none", "fgsm", "pgd"]


@dataclass
class RegularizerConfig:
    """Structure-promoting penalty λ₁ Σ‖W‖₁ and/or λ_* Σ‖W‖_* over the selected weights."""

    kind: RegularizerKind = "none"
    lambda_l1: float = 0.0
    lambda_nuclear: float = 0.0
    nuclear_mode: Literal["subgradient", "proximal"] = "proximal"
    l1_mode: Literal["subgradient", "proximal"] = "subgradient"
    # Which parameters: "all" = every Linear and Conv weight; else a regex on the module path.
    layers: str = "all"
    # Nuclear term: "fast" = Gram-matrix eigendecomposition, "exact" = LAPACK SVD; recomputed
    # every ``svd_every`` steps (0 = auto: 1 for exact, a per-matrix cost rule for fast).
    nuclear_method: Literal["fast", "exact"] = "fast"
    svd_every: int = 0

    def validate(self) -> None:
        require(self.lambda_l1 >= 0 and math.isfinite(self.lambda_l1), "lambda_l1 must be a finite number ≥ 0")
        require(
            self.lambda_nuclear >= 0 and math.isfinite(self.lambda_nuclear),
            "lambda_nuclear must be a finite number ≥ 0",
        )
        uses_l1 = self.kind in ("l1", "l1+nuclear", "product-l1")
        uses_nuc = self.kind in ("nuclear", "l1+nuclear")
        require(not uses_l1 or self.lambda_l1 > 0, f"regularizer {self.kind!r} needs lambda_l1 > 0")
        require(not uses_nuc or self.lambda_nuclear > 0, f"regularizer {self.kind!r} needs lambda_nuclear > 0")
        require(uses_l1 or self.lambda_l1 == 0, f"lambda_l1 is set but regularizer is {self.kind!r}")
        require(
            uses_nuc or self.lambda_nuclear == 0, f"lambda_nuclear is set but regularizer is {self.kind!r}"
        )
        require(self.svd_every >= 0, f"svd_every must be ≥ 0 (0 = auto), got {self.svd_every}")
        require(
            self.kind != "product-l1" or self.l1_mode == "subgradient",
            "regularizer 'product-l1' has no proximal step; use l1_mode 'subgradient'",
        )


@dataclass
class AdversarialConfig:
    """Adversarial training: FGSM mix (Goodfellow et al. 2015) or PGD (Madry et al. 2018), ℓ∞."""

    kind: AdversarialKind = "none"
    eps: float = 0.3
    alpha: float = 0.5  # FGSM: weight of the clean loss in α·L(x) + (1 − α)·L(x + δ)
    steps: int = 7  # PGD steps
    step_size: float | None = None  # PGD; default 2.5·eps/steps
    random_start: bool = True
    warmup_epochs: int = 0  # ε grows linearly from 0 over these epochs

    def validate(self) -> None:
        require(0 < self.eps <= 1 or self.kind == "none", "eps must be in (0, 1] (pixel units)")
        require(0 <= self.alpha <= 1, "alpha must be in [0, 1]")
        require(self.steps >= 1, "steps must be ≥ 1")
        require(self.step_size is None or self.step_size > 0, "step_size must be > 0")
        require(self.warmup_epochs >= 0, "warmup_epochs must be ≥ 0")


@dataclass
class TrainConfig:
    """Optimizer, schedule and loop settings; same config and seed give the same numbers on CPU."""

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
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)

    def validate(self) -> None:
        require(self.epochs >= 1, f"epochs must be ≥ 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}")
        require(self.lr > 0 and math.isfinite(self.lr), f"lr must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, "momentum must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay must be ≥ 0")
        require(self.lr_step_epochs >= 1 and 0 < self.lr_gamma <= 1, "lr_step_epochs ≥ 1, 0 < lr_gamma ≤ 1")
        require(self.eval_batch_size >= 1, "eval_batch_size must be ≥ 1")
        self.regularizer.validate()
        self.adversarial.validate()
