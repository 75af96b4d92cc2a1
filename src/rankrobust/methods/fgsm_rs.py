"""``fgsm-rs``: FGSM adversarial training from a random start (Wong, Rice & Kolter, ICLR 2020).

"Fast is better than free": per batch, δ₀ ~ U[−ε, ε]^shape (uniform in the ℓ∞ ball), then one
signed-gradient step of size α = ``alpha_ratio``·ε (1.25·ε in the paper) from x₀ = clip(x + δ₀),
projected back onto the ε-ball and [0, 1]:

    x′ = clip(x + Π_ε(x₀ + α·sign ∇ₓ L(x₀, y) − x)),    loss L(x′, y),

L the mean cross-entropy. That is one step of the PGD loop with a random start
(:func:`rankrobust.attacks.perturb.pgd_perturb`, ``steps=1``), so training and evaluation share
one loop. The random start is what keeps single-step training from *catastrophic overfitting*
(robust accuracy dropping to 0 while FGSM accuracy soars), which plain ``fgsm-adv`` suffers.
Random starts come from a private generator seeded with seed + 7919 (the data order is
untouched). With a warm-up, ε (and α with it) scale by min(1, progress / warmup_epochs). The
logits returned are the adversarial ones (``train_acc`` is the FGSM-RS train accuracy).
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
    positive,
    register,
    warmup_eps,
)
from rankrobust.methods.pgd_adv import SEED_OFFSET


@register
@dataclass(frozen=True)
class FGSMRS(TrainingMethod):
    """FGSM with a uniform random start, ℓ∞, ``eps`` in pixel units, step α = alpha_ratio·ε."""

    name = "fgsm-rs"
    label = "FGSM-RS"
    color = "#fdb863"
    kind = "adversarial"
    description = "FGSM from a uniform random start (Wong et al. 2020): step 1.25·ε, ℓ∞"

    eps: float = 0.3
    alpha_ratio: float = 1.25  # step size α = alpha_ratio · ε
    warmup_epochs: int = 0  # ε grows linearly from 0 over these epochs

    def __post_init__(self) -> None:
        check_budget(self.eps, self.warmup_epochs)
        positive(self.alpha_ratio, "alpha_ratio")

    def objective(self, seed: int) -> Objective:
        generator = torch.Generator().manual_seed(seed + SEED_OFFSET)
        eps0, ratio, warmup = self.eps, self.alpha_ratio, self.warmup_epochs

        def fgsm_rs_loss(
            model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
        ) -> tuple[torch.Tensor, torch.Tensor]:
            eps = warmup_eps(eps0, warmup, info.progress)
            if eps > 0:
                x = pgd_perturb(model, x, y, eps, "inf", steps=1, step_size=ratio * eps,
                                random_start=True, generator=generator)
            logits = model(x)
            return F.cross_entropy(logits, y), logits

        return fgsm_rs_loss
