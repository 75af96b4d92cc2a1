"""FGSM / FGM over a list of budgets, from one gradient.

Paper: Goodfellow, Shlens & Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015
(FGSM, ℓ∞); Miyato et al. 2016 (FGM, ℓ2).

Distance: ℓ∞ (norm "inf": x + ε·sign ∇ₓL) or ℓ2 (norm "2": x + ε·∇ₓL/‖∇ₓL‖₂), clipped to
``bounds``; L = cross-entropy at label y. For an affine binary classifier both are exact: they
cross the boundary iff ε > margin/‖Δw‖₁ (ℓ∞) or margin/‖Δw‖₂ (ℓ2).

Arguments: model, x (N, C, H, W) in bounds, y (N,), epsilons (list of K budgets), norm,
bounds=(0, 1), search="all" | "bisect".

Shapes: returns AttackResult with success (K, N) and x_adv (K, N, C, H, W).

The gradient is computed once and reused for every ε. As with every fixed-budget attack here,
an input fooled at a smaller ε keeps that adversarial example at larger ε (success is the OR
over budgets ε_j ≤ ε_k along the FGSM ray). ``search="all"`` checks every budget for every input
not yet fooled; ``search="bisect"`` finds each input's smallest fooling budget on the grid by
bisection (log₂(K+1) forwards instead of K), which is exact when fooling is monotone along the
ray (always for affine models) and otherwise may miss a success but never reports a false one
(x_adv of an unsuccessful entry is then the FGSM point at ε_k, unverified).

Example::

    res = fgsm(model, x, y, [0.05, 0.1, 0.2])
    res.success.float().mean(1)  # fooling ratio per ε (with y = clean predictions)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankrobust.attacks.base import (
    AttackResult,
    check_epsilons,
    check_norm,
    eval_mode,
    predict,
    prepare,
)
from rankrobust.attacks.perturb import Bounds, input_gradient, steepest_direction
from rankrobust.errors import ConfigError


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: float | Sequence[float],
    norm: str = "inf",
    bounds: Bounds = (0.0, 1.0),
    search: str = "all",
) -> AttackResult:
    """FGSM (ℓ∞) / FGM (ℓ2) at every ε in ``epsilons`` from a single input gradient."""
    norm = check_norm(norm)
    eps = check_epsilons(epsilons)
    if search not in ("all", "bisect"):
        raise ConfigError(f"search must be 'all' or 'bisect', got {search!r}")
    x, y = prepare(model, x, y, bounds)
    with eval_mode(model):
        d = steepest_direction(input_gradient(model, x, y), norm)  # (N, ...) unit step
        order = sorted(range(len(eps)), key=lambda i: eps[i])
        grid = torch.tensor([eps[i] for i in order], dtype=x.dtype, device=x.device)

        def point(idx: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
            """x + ε_j·d for inputs idx at grid positions j (both (M,))."""
            e = grid[j].view(-1, *([1] * (x.ndim - 1)))
            return (x[idx] + e * d[idx]).clamp(*bounds)

        n, k_total = x.shape[0], len(eps)
        first = torch.full((n,), k_total, dtype=torch.long, device=x.device)  # first fooling j
        if search == "all":
            todo = torch.arange(n, device=x.device)
            for j in range(k_total):
                if not len(todo):
                    break
                jj = torch.full_like(todo, j)
                hit = predict(model, point(todo, jj)) != y[todo]
                first[todo[hit]] = j
                todo = todo[~hit]
        else:
            lo = torch.zeros(n, dtype=torch.long, device=x.device)  # invariant: first in [lo, hi]
            hi = torch.full((n,), k_total, dtype=torch.long, device=x.device)
            while True:
                todo = (lo < hi).nonzero().squeeze(1)
                if not len(todo):
                    break
                mid = (lo[todo] + hi[todo]) // 2
                hit = predict(model, point(todo, mid)) != y[todo]
                hi[todo[hit]] = mid[hit]
                lo[todo[~hit]] = mid[~hit] + 1
            first = hi

        # success at sorted position j iff first <= j; example at min(first, j).
        pos = torch.arange(k_total, device=x.device)
        success_sorted = first[None, :] <= pos[:, None]  # (K, N)
        inverse = torch.empty(k_total, dtype=torch.long, device=x.device)
        inverse[torch.tensor(order, device=x.device)] = pos  # given order → sorted position
        used = torch.minimum(first[None, :], inverse[:, None])  # (K, N) grid position used
        e = grid[used].view(k_total, n, *([1] * (x.ndim - 1)))
        x_adv = torch.addcmul(x.unsqueeze(0), e, d.unsqueeze(0)).clamp_(*bounds)  # one pass
        success = success_sorted[inverse]
    return AttackResult(eps, norm, success, x_adv.detach())
