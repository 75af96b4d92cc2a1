"""FGSM / FGM over a list of budgets, from one gradient and one batched forward.

Paper: Goodfellow, Shlens & Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015
(FGSM, ℓ∞); Miyato et al. 2016 (FGM, ℓ2).

Distance: ℓ∞ (norm "inf": x + ε·sign ∇ₓL) or ℓ2 (norm "2": x + ε·∇ₓL/‖∇ₓL‖₂), clipped to
``bounds``; L = cross-entropy at label y. For an affine binary classifier both are exact: they
cross the boundary iff ε > margin/‖Δw‖₁ (ℓ∞) or margin/‖Δw‖₂ (ℓ2).

Arguments: model, x (N, C, H, W) in bounds, y (N,), epsilons (list of K budgets), norm,
bounds=(0, 1), batch_size=1024 (points per forward).

Shapes: returns AttackResult with success (K, N) and x_adv (K, N, C, H, W) (None with keep_adv=False).

The gradient is computed once; the K·N points x_ik = clip(x_i + ε_k·d_i) are classified in one
batched forward (``batch_size`` points at a time). As with every fixed-budget attack here, an
input fooled at a smaller ε keeps that adversarial example at larger ε: with the budgets sorted,
j_i = the first one whose point fools input i, success[k, i] = (ε_{j_i} ≤ ε_k) and
x_adv[k, i] = x_{i, min(j_i, k)} (the FGSM point at ε_k when the input is never fooled up to ε_k).
Cost: one forward + backward and K·N forwarded points, ``batch_size`` at a time (points are made
per chunk of budgets, so without ``keep_adv`` memory does not grow with K beyond (K, N) booleans).

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
    Bounds,
    broadcast,
    check_epsilons,
    check_norm,
    check_positive,
    eval_mode,
    predict,
    prepare,
)
from rankrobust.attacks.perturb import input_gradient, steepest_direction


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: float | Sequence[float],
    norm: str = "inf",
    bounds: Bounds = (0.0, 1.0),
    batch_size: int = 1024,
    keep_adv: bool = True,
) -> AttackResult:
    """FGSM (ℓ∞) / FGM (ℓ2) at every ε in ``epsilons`` from a single input gradient
    (``keep_adv=False``: no (K, N, ...) examples are kept, ``x_adv`` is None)."""
    norm = check_norm(norm)
    eps = check_epsilons(epsilons)
    check_positive("batch_size", batch_size)
    x, y = prepare(model, x, y, bounds)
    n, k_total = x.shape[0], len(eps)
    with eval_mode(model):
        d = steepest_direction(input_gradient(model, x, y), norm)  # (N, ...) unit step
        order = torch.tensor(sorted(range(k_total), key=lambda i: eps[i]), device=x.device)
        grid = torch.tensor(eps, dtype=x.dtype, device=x.device)[order]  # (K,) ascending

        def points(values: torch.Tensor) -> torch.Tensor:  # (c,) budgets → (c, N, ...) clipped
            return torch.addcmul(x.unsqueeze(0), broadcast(values, x.unsqueeze(0)),
                                 d.unsqueeze(0)).clamp_(*bounds)

        per_chunk = max(1, batch_size // max(n, 1))  # budgets per forward: memory O(batch_size·D)
        hits = torch.cat([
            predict(model, points(grid[i : i + per_chunk]).flatten(0, 1), batch_size)
            .view(-1, n) != y for i in range(0, k_total, per_chunk)
        ])  # (K, N) in sorted budget order
    # first fooling sorted position per input (K: none), then success and the example used
    pos = torch.arange(k_total, device=x.device)
    first = torch.where(hits, pos[:, None], k_total).amin(0)  # (N,)
    inverse = torch.empty_like(order)
    inverse[order] = pos  # given budget index → sorted position
    success = first[None, :] <= inverse[:, None]  # (K, N) in the given order
    if not keep_adv:
        return AttackResult(eps, norm, success, None)
    used = torch.minimum(first[None, :], inverse[:, None])  # (K, N) sorted position used
    scale = grid[used].view(k_total, n, *[1] * (x.ndim - 1))  # (K, N, 1, ...)
    x_adv = torch.addcmul(x.unsqueeze(0), scale, d.unsqueeze(0)).clamp_(*bounds)  # (K, N, ...)
    return AttackResult(eps, norm, success, x_adv)
