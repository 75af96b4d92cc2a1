"""DeepFool: minimal perturbations by iterative linearization, batched over samples and classes.

Paper: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep
neural networks", CVPR 2016.

Distance: ℓ2 (norm "2") or ℓ∞ (norm "inf"). At the current point, for every class l ≠ y let
f'_l = f_l − f_y and w'_l = ∇f_l − ∇f_y; the nearest linearized boundary is
l* = argmin_l |f'_l| / ‖w'_l‖_q (q = 2 for ℓ2, q = 1 for ℓ∞, the dual norm) and the step is
r = |f'_l*| / ‖w'_l*‖₂² · w'_l* (ℓ2) or |f'_l*| / ‖w'_l*‖₁ · sign(w'_l*) (ℓ∞). The iterate moves
by (1 + overshoot)·r and is clipped to ``bounds``, until the label changes or ``max_iter``.
For an affine classifier one step is exact: ‖r‖ = min_l margin_l / ‖Δw_l‖_q.

Arguments: model, x (N, C, H, W) in bounds, y (N,), norm="2", overshoot=0.02, max_iter=50,
bounds=(0, 1).

Shapes: returns MinimalResult with x_adv (N, C, H, W), perturbation (N, C, H, W), norms (N,),
success (N,), iterations (N,).

Batching: one forward of every still-correct input, then one backward per class (the class
logits summed over the batch, since input i's logits depend on x_i only) gives the whole
Jacobian (K, B, ...); inputs drop out as soon as they are fooled. No Python loop over samples.

Example::

    res = deepfool(model, x, model_predictions, norm="2")
    rho = (res.norms / x.flatten(1).norm(dim=1))[res.success].mean()
"""

from __future__ import annotations

import torch
from torch import nn

from rankrobust.attacks.base import (
    MinimalResult,
    check_norm,
    eval_mode,
    predict,
    prepare,
)
from rankrobust.attacks.perturb import Bounds, flat_norm
from rankrobust.errors import ConfigError


def jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, K) and their input Jacobian (K, B, ...): K backward passes over the batch."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        k = logits.shape[1]
        rows = [
            torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c + 1 < k)[0] for c in range(k)
        ]
    return logits.detach(), torch.stack(rows)


def deepfool_step(
    logits: torch.Tensor, jac: torch.Tensor, y: torch.Tensor, norm: str
) -> torch.Tensor:
    """The linearized minimal step r (B, ...) from logits (B, K) and Jacobian (K, B, ...)."""
    b, k = logits.shape
    idx = torch.arange(b, device=logits.device)
    grads = jac.transpose(0, 1).flatten(2)  # (B, K, D)
    f = logits - logits[idx, y][:, None]  # (B, K): f'_l = f_l − f_y ≤ 0 while correct
    w = grads - grads[idx, y][:, None, :]  # (B, K, D)
    dual = w.abs().sum(2) if norm == "inf" else w.norm(dim=2)  # (B, K)
    dist = f.abs() / dual.clamp_min(1e-12)
    dist[idx, y] = torch.inf
    best = dist.argmin(1)  # (B,)
    wb, fb = w[idx, best], f[idx, best].abs()  # (B, D), (B,)
    if norm == "inf":
        r = (fb / wb.abs().sum(1).clamp_min(1e-12))[:, None] * wb.sign()
    else:
        r = (fb / (wb * wb).sum(1).clamp_min(1e-12))[:, None] * wb
    return r.view(b, *jac.shape[2:])


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str = "2",
    overshoot: float = 0.02,
    max_iter: int = 50,
    bounds: Bounds = (0.0, 1.0),
) -> MinimalResult:
    """DeepFool (Moosavi-Dezfooli et al. 2016): per-input minimal perturbations in ℓ2 or ℓ∞."""
    norm = check_norm(norm)
    if overshoot < 0 or max_iter < 1:
        raise ConfigError(f"need overshoot >= 0 and max_iter >= 1, got {overshoot}, {max_iter}")
    x, y = prepare(model, x, y, bounds)
    n = x.shape[0]
    x_adv = x.clone()
    success = torch.zeros(n, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    active = torch.arange(n, device=x.device)
    with eval_mode(model):
        for it in range(max_iter + 1):
            hit = predict(model, x_adv[active]) != y[active]
            success[active[hit]] = True
            active = active[~hit]
            if it == max_iter or not len(active):
                break
            xa = x_adv[active]
            logits, jac = jacobian(model, xa)
            with torch.no_grad():
                r = deepfool_step(logits, jac, y[active], norm)
                x_adv[active] = (xa + (1 + overshoot) * r).clamp(*bounds)
            iterations[active] += 1
    pert = x_adv - x
    return MinimalResult(norm, x_adv.detach(), pert.detach(), flat_norm(pert, norm), success,
                         iterations)

