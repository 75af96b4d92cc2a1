"""Adversarial training objectives (ℓ∞, inputs in [0, 1]), with an optional linear ε warm-up.

* FGSM mix (Goodfellow et al. 2015): α·L(x, y) + (1 − α)·L(x + ε·sign ∇ₓL(x, y), y), α = 0.5.
  The logits returned (for the train accuracy) are the clean ones.
* PGD (Madry et al. 2018): L(x + δ*, y) with δ* from k projected sign-gradient steps of size a
  (default 2.5·ε/k) from a uniform random start in the ε-ball. The logits returned are the
  adversarial ones, so ``train_acc`` is then the robust train accuracy.

L is the mean cross-entropy. The attacks (``rankrobust.attacks.perturb``) do not switch the model
to eval mode: the network is attacked as it is trained. ε at a step = ε·min(1, progress / w) with
progress in (fractional) epochs and w = ``warmup_epochs``; at ε = 0 the attack is skipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.perturb import fgsm_perturb, pgd_perturb
from rankrobust.errors import ConfigError
from rankrobust.training.callbacks import TrainState
from rankrobust.training.config import AdversarialConfig
from rankrobust.training.objectives import Objective


def warmup_eps(eps: float, warmup_epochs: int, progress: float) -> float:
    """ε·min(1, progress / warmup_epochs); ε itself when warmup_epochs = 0."""
    if warmup_epochs <= 0:
        return eps
    return eps * min(1.0, progress / warmup_epochs)


class FGSMObjective:
    """α·L(x, y) + (1 − α)·L(x_adv, y), x_adv = clip(x + ε·sign ∇ₓL(x, y), 0, 1)."""

    def __init__(self, eps: float, alpha: float = 0.5, warmup_epochs: int = 0) -> None:
        self.eps, self.alpha, self.warmup_epochs = eps, alpha, warmup_epochs

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps = warmup_eps(self.eps, self.warmup_epochs, state.progress)
        logits = model(x)  # (B, classes)
        loss = F.cross_entropy(logits, y)
        if eps <= 0 or self.alpha >= 1:
            return loss, logits
        x_adv = fgsm_perturb(model, x, y, eps)
        adv_loss = F.cross_entropy(model(x_adv), y)
        return self.alpha * loss + (1 - self.alpha) * adv_loss, logits


class PGDObjective:
    """L(x + δ*, y) with δ* = ``pgd_perturb`` (ℓ∞, ``steps`` steps, random start)."""

    def __init__(
        self,
        eps: float,
        steps: int = 7,
        step_size: float | None = None,
        random_start: bool = True,
        warmup_epochs: int = 0,
        seed: int = 0,
    ) -> None:
        self.eps, self.steps, self.step_size = eps, steps, step_size
        self.random_start, self.warmup_epochs = random_start, warmup_epochs
        # A private stream for the random starts: same seed → same starts, data order untouched.
        self.generator = torch.Generator().manual_seed(seed + 7919)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, state: TrainState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps = warmup_eps(self.eps, self.warmup_epochs, state.progress)
        if eps > 0:
            step_size = None
            if self.step_size is not None:  # a warm-up scales a fixed step with ε
                step_size = self.step_size * eps / self.eps
            x = pgd_perturb(
                model, x, y, eps, "inf", self.steps, step_size, self.random_start,
                generator=self.generator,
            )
        logits = model(x)
        return F.cross_entropy(logits, y), logits


def adversarial_objective(config: AdversarialConfig, seed: int = 0) -> Objective:
    """The objective that ``config.kind`` names ("fgsm" or "pgd")."""
    config.validate()
    if config.kind == "fgsm":
        return FGSMObjective(config.eps, config.alpha, config.warmup_epochs)
    if config.kind == "pgd":
        return PGDObjective(
            config.eps, config.steps, config.step_size, config.random_start,
            config.warmup_epochs, seed,
        )
    raise ConfigError(f"no adversarial objective for kind {config.kind!r} (choose fgsm or pgd)")
