"""PGD over a list of budgets, with restarts and per-sample early stopping.

Paper: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards deep learning models resistant to
adversarial attacks", ICLR 2018.

Distance: ℓ∞ (norm "inf") or ℓ2 (norm "2"). Each step x ← Π(x + α·d(∇ₓL)) with d = sign (ℓ∞)
or ∇/‖∇‖₂ (ℓ2), Π the projection onto the ε-ball around the input followed by clipping to
``bounds``; L = cross-entropy at label y. The loop is :func:`rankrobust.attacks.perturb.pgd_run`,
the one adversarial training runs too (here with ``track``: iterates scored and kept).

Arguments: model, x (N, C, H, W) in bounds, y (N,), epsilons (K budgets), norm, steps=40,
step_size=None (α = 2.5·ε/steps), random_start=True (uniform in the ℓ∞ ball; uniform direction
and radius in the ℓ2 ball), restarts=1, bounds=(0, 1), generator=None (a seeded CPU generator;
None means seed 0), early_stop=True, warm_start=True (the first run at each budget after the
smallest starts from the highest-loss iterate found at the previous budget, which lies in the
larger ball, instead of a random start: in effect more steps where they are needed).

Shapes: returns AttackResult with success (K, N) and x_adv (K, N, C, H, W).

Work saved, results unchanged in kind: budgets run in ascending order and an input fooled at a
smaller ε keeps its example; within a run an input stops costing work at the first iterate that
fools the model (``early_stop``); each restart runs only on inputs no restart has fooled yet.
For inputs never fooled, x_adv is the highest-loss iterate over all steps and restarts.
Cost per budget at most steps·(forward + backward) + one forward per restart.

Example::

    res = pgd(model, x, y, [0.1, 0.2, 0.3], steps=40, restarts=2)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankrobust.attacks.base import (
    AttackResult,
    Bounds,
    SingleBudget,
    budgets_attack,
    check_positive,
    default_generator,
)
from rankrobust.attacks.perturb import pgd_run, random_in_ball
from rankrobust.errors import ConfigError


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: float | Sequence[float],
    norm: str = "inf",
    steps: int = 40,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
    early_stop: bool = True,
    warm_start: bool = True,
    keep_adv: bool = True,
) -> AttackResult:
    """PGD (Madry et al. 2018) at every ε in ``epsilons``; keeps the highest-loss restart
    (``keep_adv=False``: no (K, N, ...) examples are kept, ``x_adv`` is None)."""
    if steps < 1 or restarts < 1:
        raise ConfigError(f"steps and restarts must be at least 1, got {steps} and {restarts}")
    if step_size is not None:
        check_positive("step_size", step_size)
    gen = default_generator(generator)
    n_runs = restarts if random_start else 1

    def single(x: torch.Tensor, y: torch.Tensor, norm: str) -> SingleBudget:
        previous: dict[str, torch.Tensor] = {}  # highest-loss iterates at the last (smaller) budget

        def attack_one(
            xs: torch.Tensor, ys: torch.Tensor, eps: float, rows: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            alpha = 2.5 * eps / steps if step_size is None else step_size
            best_x, fooled = xs.clone(), torch.zeros(len(xs), dtype=torch.bool, device=xs.device)
            best_loss = torch.full((len(xs),), -torch.inf, dtype=xs.dtype, device=xs.device)
            for run in range(n_runs):
                todo = (~fooled).nonzero().squeeze(1)
                if not len(todo):
                    break
                sub = xs[todo]
                if run == 0 and warm_start and "x" in previous:
                    start = previous["x"][rows[todo]] - sub  # inside the smaller, hence this, ball
                elif random_start:
                    start = random_in_ball(sub, eps, norm, gen)
                else:
                    start = torch.zeros_like(sub)
                tracked = pgd_run(model, sub, ys[todo], eps, norm, steps, alpha, start, bounds,
                                  track=True, early_stop=early_stop)
                xa, hit, loss = tracked.x_adv, tracked.fooled, tracked.loss
                assert hit is not None and loss is not None  # track=True records both
                better = loss > best_loss[todo]
                best_x[todo[better]] = xa[better]
                best_loss[todo[better]] = loss[better]
                fooled[todo[hit]] = True
            if "x" not in previous:
                previous["x"] = x.clone()
            previous["x"][rows] = best_x
            return best_x, fooled

        return attack_one

    return budgets_attack(model, x, y, epsilons, norm, bounds, single, keep_adv)
