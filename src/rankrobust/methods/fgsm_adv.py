"""``fgsm-adv``: FGSM adversarial training (Goodfellow, Shlens & Szegedy, ICLR 2015), ℓ∞.

Loss α·L(x, y) + (1 − α)·L(x + ε·sign ∇ₓL(x, y), y) with L the mean cross-entropy and the
perturbed input clipped to [0, 1]; α = 0.5 as in the paper. The logits returned (train accuracy)
are the clean ones. The network is attacked as it is trained (its mode is not switched). ε at a
step is ε·min(1, progress / warmup_epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.perturb import fgsm_perturb
from rankrobust.configuration import require
from rankrobust.methods.base import (
    Objective,
    StepInfo,
    TrainingMethod,
    check_budget,
    register,
    warmup_eps,
)


@register
@dataclass(frozen=True)
class FGSMAdv(TrainingMethod):
    """FGSM-mix adversarial training; ``eps`` in pixel units (inputs in [0, 1])."""

    name = "fgsm-adv"
    label = "FGSM-adv"
    color = "#e08214"
    kind = "adversarial"
    description = "FGSM adversarial training: α·CE(x) + (1 − α)·CE(x + ε·sign ∇ₓCE), ℓ∞"

    eps: float = 0.3
    alpha: float = 0.5  # weight of the clean loss
    warmup_epochs: int = 0  # ε grows linearly from 0 over these epochs

    def __post_init__(self) -> None:
        check_budget(self.eps, self.warmup_epochs)
        require(0 <= self.alpha < 1, f"alpha (the clean-loss weight) must be in [0, 1), got "
                f"{self.alpha}; alpha = 1 would change nothing (natural training)")

    def passes(self) -> float:
        return 2.0  # the clean pass with its input gradient, then the perturbed one

    def objective(self, seed: int) -> Objective:
        eps0, alpha, warmup = self.eps, self.alpha, self.warmup_epochs

        def fgsm_mix(
            model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
        ) -> tuple[torch.Tensor, torch.Tensor]:
            eps = warmup_eps(eps0, warmup, info.progress)
            logits = model(x)  # (B, classes)
            loss = F.cross_entropy(logits, y)
            if eps <= 0:
                return loss, logits
            adv_loss = F.cross_entropy(model(fgsm_perturb(model, x, y, eps)), y)
            return alpha * loss + (1 - alpha) * adv_loss, logits

        return fgsm_mix
