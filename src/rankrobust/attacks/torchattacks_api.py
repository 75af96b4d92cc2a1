"""torchattacks-shaped attacks: ``PGD(model, eps=8/255, alpha=2/255, steps=10)(x, y) -> x_adv``.

A thin layer over this package's functions (no second attack loop) for code written against
torchattacks 3.5: the same class names, keyword names and **defaults** as torchattacks, one
budget per object, ``attack(x, y)`` returning the adversarial examples x_adv (N, C, H, W) on the
model's device. The model runs in eval mode (modes restored), inputs in [0, 1].

====================  =====================================  ==================================
this layer            calls                                  notes
====================  =====================================  ==================================
``PGD``               :func:`.perturb.pgd_run` (the PGD      ℓ∞, last iterate as torchattacks;
                      loop of training and evaluation)       random start drawn as torchattacks
                                                             draws it (``uniform_(-eps, eps)``
                                                             from torch's RNG), so the same
                                                             ``torch.manual_seed`` gives the same
                                                             x_adv
``APGD``              :func:`~rankrobust.attacks.apgd`       loss "ce" or "dlr"; ``seed`` seeds
                                                             a generator of its own
``APGDT``             ``apgd(loss="dlr-targeted")``          ``n_classes − 1`` target classes
``Square``            :func:`~rankrobust.attacks.square`     one restart, margin loss
``AutoAttack``        :func:`~rankrobust.attacks.autoattack` "standard" without FAB-T; APGD at
                                                             torchattacks' 10 steps, Square at
                                                             5000 queries; ``seed=None`` is 0
====================  =====================================  ==================================

Where they differ: the functions take a **list** of budgets and return an
:class:`~rankrobust.attacks.AttackResult` (K, N): ``pgd(model, x, y, [e]).x_adv[0]`` is one
budget. ``rankrobust.attacks.pgd`` defaults to 40 steps of 2.5·ε/steps and keeps, per input, the
first iterate that fooled the model (else the highest-loss one), so it is at least as strong as
the last iterate kept here. Options torchattacks has and these functions do not (``eot_iter``
other than 1, ``rho`` other than 0.75, several Square restarts, targeted modes) are refused with
one line rather than ignored.

Example::

    from rankrobust.attacks import PGD
    x_adv = PGD(model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True)(x, y)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankrobust.attacks.apgd import apgd
from rankrobust.attacks.autoattack import autoattack
from rankrobust.attacks.base import check_norm, check_positive, eval_mode, prepare
from rankrobust.attacks.perturb import pgd_run
from rankrobust.attacks.square import square
from rankrobust.errors import ConfigError
from rankrobust.models.adapter import ModelAdapter, Normalization

BOUNDS = (0.0, 1.0)


def _fixed(name: str, value: object, supported: object) -> None:
    if value != supported:
        raise ConfigError(f"{name}={value!r} is not supported here (only {supported!r})")


def _generator(seed: int | None) -> torch.Generator:
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


class Attack:
    """Base: holds the model and the settings; ``attack(x, y)`` returns x_adv (N, ...)."""

    def __init__(self, model: nn.Module, eps: float) -> None:
        if not eps >= 0:
            raise ConfigError(f"eps must be non-negative, got {eps}")
        self.model = model
        self.eps = float(eps)
        self.normalization: Normalization | None = None

    def set_normalization_used(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """As torchattacks 3.5: the inputs given to the attack, and the x_adv it returns, are
        normalized, z = (x − mean) / std per channel. The attack runs on the pixels
        x = z·std + mean (clipped to [0, 1]) against x ↦ model((x − mean) / std)
        (:class:`~rankrobust.models.adapter.ModelAdapter`), so ε stays in pixel units."""
        self.normalization = Normalization.of(mean, std)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x_adv (N, ...) for pixels x in [0, 1] against ``model``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.normalization is None:
            return self.attack(self.model, x, y)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = torch.tensor(self.normalization.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.normalization.std, dtype=x.dtype, device=x.device).view(shape)
        pixels = (x * std + mean).clamp(*BOUNDS)
        x_adv = self.attack(ModelAdapter(self.model, normalization=self.normalization), pixels, y)
        return (x_adv - mean.to(x_adv.device)) / std.to(x_adv.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward(x, y)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "model")
        return f"{type(self).__name__}({fields})"


class PGD(Attack):
    """PGD, ℓ∞ (Madry et al. 2018) as torchattacks.PGD: ``steps`` signed-gradient steps of size
    ``alpha`` from x (or a uniform random start in the ε-ball), each projected onto the ball and
    [0, 1]; the last iterate is returned."""

    def __init__(self, model: nn.Module, eps: float = 8 / 255, alpha: float = 2 / 255,
                 steps: int = 10, random_start: bool = True) -> None:
        super().__init__(model, eps)
        check_positive("alpha", alpha)
        if steps < 0:
            raise ConfigError(f"steps must be non-negative, got {steps}")
        self.alpha, self.steps, self.random_start = float(alpha), int(steps), bool(random_start)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = prepare(model, x, y, BOUNDS)
        # torchattacks' draw: uniform_(−ε, ε) from torch's RNG on x's device
        start = torch.empty_like(x).uniform_(-self.eps, self.eps) if self.random_start else torch.zeros_like(x)
        with eval_mode(model):
            return pgd_run(model, x, y, self.eps, "inf", self.steps, self.alpha, start, BOUNDS).x_adv


class APGD(Attack):
    """APGD-CE / APGD-DLR (Croce & Hein 2020) as torchattacks.APGD."""

    def __init__(self, model: nn.Module, norm: str = "Linf", eps: float = 8 / 255, steps: int = 10,
                 n_restarts: int = 1, seed: int = 0, loss: str = "ce", eot_iter: int = 1,
                 rho: float = 0.75, verbose: bool = False) -> None:
        super().__init__(model, eps)
        if loss not in ("ce", "dlr"):
            raise ConfigError(f"loss must be 'ce' or 'dlr', got {loss!r}")
        _fixed("eot_iter", eot_iter, 1)
        _fixed("rho", rho, 0.75)
        self.norm, self.steps, self.n_restarts = check_norm(norm), int(steps), int(n_restarts)
        self.seed, self.loss = seed, loss

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _only(apgd(model, x, y, [self.eps], norm=self.norm, loss=self.loss, steps=self.steps,
                    restarts=self.n_restarts, generator=_generator(self.seed)).x_adv)


class APGDT(Attack):
    """Targeted APGD-DLR (Croce & Hein 2020) as torchattacks.APGDT: ``n_classes − 1`` targets."""

    def __init__(self, model: nn.Module, norm: str = "Linf", eps: float = 8 / 255, steps: int = 10,
                 n_restarts: int = 1, seed: int = 0, eot_iter: int = 1, rho: float = 0.75,
                 verbose: bool = False, n_classes: int = 10) -> None:
        super().__init__(model, eps)
        _fixed("eot_iter", eot_iter, 1)
        _fixed("rho", rho, 0.75)
        self.norm, self.steps, self.n_restarts = check_norm(norm), int(steps), int(n_restarts)
        self.seed, self.n_classes = seed, int(n_classes)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _only(apgd(model, x, y, [self.eps], norm=self.norm, loss="dlr-targeted",
                    steps=self.steps, restarts=self.n_restarts, n_targets=self.n_classes - 1,
                    generator=_generator(self.seed)).x_adv)


class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020) as torchattacks.Square (one restart)."""

    def __init__(self, model: nn.Module, norm: str = "Linf", eps: float = 8 / 255,
                 n_queries: int = 5000, n_restarts: int = 1, p_init: float = 0.8,
                 loss: str = "margin", resc_schedule: bool = True, seed: int = 0,
                 verbose: bool = False) -> None:
        super().__init__(model, eps)
        _fixed("n_restarts", n_restarts, 1)
        _fixed("loss", loss, "margin")
        _fixed("resc_schedule", resc_schedule, True)
        self.norm, self.n_queries, self.p_init, self.seed = check_norm(norm), int(n_queries), p_init, seed

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _only(square(model, x, y, [self.eps], norm=self.norm, n_queries=self.n_queries,
                      p_init=self.p_init, generator=_generator(self.seed)).x_adv)


class AutoAttack(Attack):
    """AutoAttack "standard" (Croce & Hein 2020) as torchattacks.AutoAttack, without FAB-T:
    APGD-CE → APGD-T → Square, each on the inputs the others left. ``steps`` (APGD, default
    torchattacks' 10; AutoAttack's paper uses 100) and ``n_queries`` (Square, 5000) are extras."""

    def __init__(self, model: nn.Module, norm: str = "Linf", eps: float = 8 / 255,
                 version: str = "standard", n_classes: int = 10, seed: int | None = None,
                 verbose: bool = False, steps: int = 10, n_queries: int = 5000) -> None:
        super().__init__(model, eps)
        _fixed("version", version, "standard")
        self.norm, self.n_classes, self.seed = check_norm(norm), int(n_classes), seed
        self.steps, self.n_queries = int(steps), int(n_queries)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _only(autoattack(model, x, y, [self.eps], norm=self.norm, steps=self.steps,
                          n_targets=max(self.n_classes - 1, 1), n_queries=self.n_queries,
                          seed=0 if self.seed is None else int(self.seed)).x_adv)


def _only(x_adv: torch.Tensor | None) -> torch.Tensor:
    """The (N, ...) examples of the single budget (the attacks here keep them)."""
    assert x_adv is not None, "the attack was asked to keep its adversarial examples"
    return x_adv[0]
