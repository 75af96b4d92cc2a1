"""``pgd-adv``: PGD adversarial training (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018).

Loss L(x + δ*, y) with δ* from ``steps`` projected sign-gradient ascent steps of size a
(default 2.5·ε/steps) from a uniform random start in the ℓ∞ ε-ball, inputs clipped to [0, 1].
The logits returned are the adversarial ones, so ``train_acc`` is the robust train accuracy.
Random starts come from a private generator seeded with seed + 7919: the data order is untouched.
With a warm-up, ε and a fixed step size both scale by min(1, progress / warmup_epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.perturb import pgd_perturb
from rankrobust.methods.base import (
    Objective,
    StepInfo,
    TrainingMethod,
    check_budget,
    register,
    warmup_eps,
)

SEED_OFFSET = 7919  # the random-start stream: seed + this


@register
@dataclass(frozen=True)
class PGDAdv(TrainingMethod):
    """PGD adversarial training, ℓ∞, ``eps`` in pixel units."""

    name = "pgd-adv"
    label = "PGD-adv"
    color = "#b2182b"
    kind = "adversarial"
    description = "PGD adversarial training (Madry et al.): CE at a k-step ℓ∞ PGD example"

    eps: float = 0.3
    steps: int = 7
    step_size: float | None = None  # default 2.5·eps/steps
    random_start: bool = True
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        check_budget(self.eps, self.warmup_epochs, self.steps, self.step_size)

    def passes(self) -> float:
        return float(self.steps) + 1.0  # the PGD steps, then the training pass

    def objective(self, seed: int) -> Objective:
        generator = torch.Generator().manual_seed(seed + SEED_OFFSET)
        eps0, steps, step_size0 = self.eps, self.steps, self.step_size
        random_start, warmup = self.random_start, self.warmup_epochs

        def pgd_loss(
            model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
        ) -> tuple[torch.Tensor, torch.Tensor]:
            eps = warmup_eps(eps0, warmup, info.progress)
            if eps > 0:
                step_size = None if step_size0 is None else step_size0 * eps / eps0
                x = pgd_perturb(model, x, y, eps, "inf", steps, step_size, random_start,
                                generator=generator)
            logits = model(x)
            return F.cross_entropy(logits, y), logits

        return pgd_loss
