"""PGD over a list of budgets, with restarts and per-sample early stopping.

Paper: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards deep learning models resistant to
adversarial attacks", ICLR 2018.

Distance: ℓ∞ (norm "inf") or ℓ2 (norm "2"). Each step x ← Π(x + α·d(∇ₓL)) with d = sign (ℓ∞)
or ∇/‖∇‖₂ (ℓ2), Π the projection onto the ε-ball around the input followed by clipping to
``bounds``; L = cross-entropy at label y.

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
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.base import (
    AttackResult,
    ascending_budgets,
    broadcast,
    check_epsilons,
    check_norm,
    check_positive,
    default_generator,
    eval_mode,
    prepare,
)
from rankrobust.attacks.perturb import Bounds, flat_norm, project, steepest_direction
from rankrobust.errors import ConfigError


def random_in_ball(
    x: torch.Tensor, eps: float, norm: str, generator: torch.Generator, full_radius: bool = False
) -> torch.Tensor:
    """δ (same shape as x) uniform in the ℓ∞ ball, or a uniform direction times ε·u (ℓ2; u ~
    U[0, 1], or u = 1 with ``full_radius``). Drawn on CPU for device-independent determinism."""
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    if norm == "inf":
        return ((2 * u - 1) * eps).to(x.device)
    g = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    g = g / broadcast(flat_norm(g, "2").clamp_min(1e-12), g)
    r = torch.ones_like(u.flatten(1)[:, 0]) if full_radius else u.flatten(1)[:, 0]
    return (g * eps * broadcast(r, g)).to(x.device)


def pgd_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str,
    steps: int,
    alpha: float,
    start: torch.Tensor,
    bounds: Bounds,
    early_stop: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD run from x + start at one budget; model already in eval mode.

    Returns (x_adv (B, ...), fooled (B,), loss (B,)): the first fooling iterate for fooled
    inputs, else the highest-loss iterate, and that iterate's loss (+inf when fooled).
    """
    b = x.shape[0]
    e = torch.full((b, *([1] * (x.ndim - 1))), eps, dtype=x.dtype, device=x.device)
    best_x = x.clone()
    best_loss = torch.full((b,), -torch.inf, dtype=x.dtype, device=x.device)
    fooled = torch.zeros(b, dtype=torch.bool, device=x.device)
    active = torch.arange(b, device=x.device)
    xs, ys, es = x, y, e
    xa = (x + start).clamp(*bounds)
    for t in range(steps + 1):
        last = t == steps
        with torch.enable_grad() if not last else torch.no_grad():
            xa = xa.detach().requires_grad_(not last)
            logits = model(xa)
            loss = F.cross_entropy(logits, ys, reduction="none")
            grad = None if last else torch.autograd.grad(loss.sum(), xa)[0]
        with torch.no_grad():
            xa = xa.detach()
            loss = loss.detach()
            hit = (logits.argmax(1) != ys) & ~fooled[active]
            better = (loss > best_loss[active]) & ~fooled[active]
            upd = hit | better
            best_x[active[upd]] = xa[upd]
            best_loss[active[better]] = loss[better]
            fooled[active[hit]] = True
            best_loss[active[hit]] = torch.inf
            if last:
                break
            assert grad is not None
            xa = (xs + project(xa + alpha * steepest_direction(grad, norm) - xs, es, norm))
            xa = xa.clamp(*bounds)
            if early_stop:
                keep = ~fooled[active]
                if not keep.all():
                    active, xa, xs, ys, es = active[keep], xa[keep], xs[keep], ys[keep], es[keep]
                if not len(active):
                    break
    return best_x, fooled, best_loss


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
) -> AttackResult:
    """PGD (Madry et al. 2018) at every ε in ``epsilons``; keeps the highest-loss restart."""
    norm = check_norm(norm)
    eps_list = check_epsilons(epsilons)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"steps and restarts must be at least 1, got {steps} and {restarts}")
    if step_size is not None:
        check_positive("step_size", step_size)
    x, y = prepare(model, x, y, bounds)
    gen = default_generator(generator)
    n_runs = restarts if random_start else 1
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
            xa, hit, loss = pgd_run(model, sub, ys[todo], eps, norm, steps, alpha, start, bounds,
                                    early_stop)
            better = loss > best_loss[todo]
            best_x[todo[better]] = xa[better]
            best_loss[todo[better]] = loss[better]
            fooled[todo[hit]] = True
        if "x" not in previous:
            previous["x"] = x.clone()
        previous["x"][rows] = best_x
        return best_x, fooled

    with eval_mode(model):
        return ascending_budgets(x, y, eps_list, norm, attack_one)
