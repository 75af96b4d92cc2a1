"""``trades``: TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, ICML 2019), ℓ∞.

Loss CE(f(x), y) + β·KL(p(x) ‖ p(x′)) with p = softmax ∘ f, the KL averaged over the batch, and
x′ found by ``steps`` projected sign-gradient ascent steps on Σᵢ KL(p(xᵢ) ‖ p(x′ᵢ)) (p(x)
held fixed during the attack) from a uniform random start in the ε-ball (the original starts at
x + 0.001·N(0, I); at x itself the KL's gradient is 0), inputs clipped to [0, 1]. In the loss
the gradient flows through both p(x) and p(x′), as in the authors' code. The logits returned are
the clean ones. Random starts come from a private generator seeded with seed + 7919; ε (and a
fixed step size) follow the linear warm-up of ``warmup_epochs``.
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


def kl_to_clean(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Σᵢ KL(p_cleanᵢ ‖ softmax(logits_advᵢ)) for logits (B, K) and probabilities (B, K)."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), p_clean, reduction="sum")


@register
@dataclass(frozen=True)
class Trades(TrainingMethod):
    """TRADES: accuracy plus β times the clean-vs-adversarial KL; ``eps`` in pixel units."""

    name = "trades"
    label = "TRADES"
    color = "#d6604d"
    kind = "adversarial"
    description = "TRADES (Zhang et al. 2019): CE(f(x), y) + β·KL(f(x) ‖ f(x′)), x′ by PGD on the KL"

    beta: float = 6.0
    eps: float = 0.3
    steps: int = 10
    step_size: float | None = None  # default 2.5·eps/steps
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        positive(self.beta, "beta")  # β = 0 would change nothing (natural training)
        check_budget(self.eps, self.warmup_epochs, self.steps, self.step_size)

    def passes(self) -> float:
        return float(self.steps) + 2.0  # clean pass, PGD steps on the KL, the adversarial pass

    def objective(self, seed: int) -> Objective:
        generator = torch.Generator().manual_seed(seed + SEED_OFFSET)
        beta, eps0, steps, step_size0 = float(self.beta), self.eps, self.steps, self.step_size
        warmup = self.warmup_epochs

        def trades_loss(
            model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
        ) -> tuple[torch.Tensor, torch.Tensor]:
            logits = model(x)  # (B, K)
            loss = F.cross_entropy(logits, y)
            eps = warmup_eps(eps0, warmup, info.progress)
            if eps <= 0:
                return loss, logits
            step_size = None if step_size0 is None else step_size0 * eps / eps0
            p_clean = F.softmax(logits.detach(), dim=1)
            x_adv = pgd_perturb(model, x, p_clean, eps, "inf", steps, step_size, True,
                                generator=generator, loss_fn=kl_to_clean)
            robust = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1),
                              reduction="batchmean")
            return loss + beta * robust, logits

        return trades_loss
