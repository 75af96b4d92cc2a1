"""DeepFool: minimal perturbations by iterative linearization, batched over samples and classes.

Paper: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep
neural networks", CVPR 2016.

Distance: ℓ2 (norm "2") or ℓ∞ (norm "inf"). At the current point, for every class l ≠ y let
f'_l = f_l − f_y and w'_l = ∇f_l − ∇f_y; the nearest linearized boundary is
l* = argmin_l |f'_l| / ‖w'_l‖_q (q = 2 for ℓ2, q = 1 for ℓ∞, the dual norm) and the step is
r = |f'_l*| / ‖w'_l*‖₂² · w'_l* (ℓ2) or |f'_l*| / ‖w'_l*‖₁ · sign(w'_l*) (ℓ∞). The iterate moves
by (1 + overshoot)·r and is clipped to ``bounds``, until the label changes or ``max_iter``.
Box-aware fallback (ours): after ``plain_iter`` classic (clipped) steps, inputs not yet fooled
take box-aware steps: l* is chosen with the components of w'_l that point out of the box at
saturated pixels set to 0, and r is the exact minimal step of the linearized problem inside the
box (clip along the direction, closed form by sorting breakpoints; see :func:`box_step`). The
classic clipped step alone (torchattacks) stalls on images with many saturated pixels (MNIST:
~40 % of inputs never fooled), as clipping only shrinks the margin geometrically; the box step
alone always progresses but its larger jumps give larger perturbations. When the bounds do not
bind both are the original algorithm.
For an affine classifier one step is exact: ‖r‖ = min_l margin_l / ‖Δw_l‖_q.

Arguments: model, x (N, C, H, W) in bounds, y (N,), norm="2", overshoot=0.02, max_iter=50,
bounds=(0, 1), plain_iter=3.

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
    Bounds,
    MinimalResult,
    check_norm,
    eval_mode,
    flat_norm,
    predict,
    prepare,
)
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


def box_step(w: torch.Tensor, f: torch.Tensor, room: torch.Tensor, norm: str) -> torch.Tensor:
    """Exact minimal step of a linear model inside a box, batched: r (B, D) minimizing ‖r‖
    subject to ⟨w, r⟩ = f (f ≥ 0, (B,)) and −room⁻ ≤ r ≤ room⁺ along sign(w).

    The minimizer moves along v = w (ℓ2) or sign(w) (ℓ∞) and clips: rᵢ = sign(wᵢ)·min(λ|vᵢ|,
    roomᵢ) with roomᵢ ≥ 0 the distance to the bound that sign(wᵢ) points to. ⟨w, r(λ)⟩ is
    piecewise linear in λ with breakpoints roomᵢ/|vᵢ|; sorting them gives λ in closed form.
    When even saturating every coordinate falls short, r saturates (the box's farthest point).
    """
    aw = w.abs()
    av = aw if norm == "2" else (aw > 0).to(w.dtype)
    bp = torch.where(av > 0, room / av.clamp_min(1e-30), torch.full_like(room, torch.finfo(w.dtype).max))
    bp, order = bp.sort(dim=1)  # (B, D) ascending breakpoints
    aw_s, av_s, room_s = aw.gather(1, order), av.gather(1, order), room.gather(1, order)
    sat = torch.cumsum(aw_s * room_s, 1) - aw_s * room_s  # Σ_{i<j} |w|·room: saturated before j
    lin = torch.flip(torch.cumsum(torch.flip(aw_s * av_s, [1]), 1), [1])  # Σ_{i≥j} |w|·|v|
    reach = sat + torch.where(lin > 0, bp * lin, torch.zeros_like(lin))  # ⟨w, r(bp_j)⟩
    j = (reach < f[:, None]).sum(1).clamp(max=w.shape[1] - 1)  # first j with reach ≥ f
    idx = torch.arange(len(w), device=w.device)
    lam = (f - sat[idx, j]) / lin[idx, j].clamp_min(1e-30)
    reachable = reach[:, -1] >= f
    lam = torch.where(reachable, lam, torch.full_like(lam, torch.inf))
    step = torch.where(av > 0, torch.minimum(lam[:, None] * av, room), torch.zeros_like(room))
    return w.sign() * step


def deepfool_step(
    logits: torch.Tensor,
    jac: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    x: torch.Tensor | None = None,
    bounds: Bounds | None = None,
) -> torch.Tensor:
    """The linearized minimal step r (B, ...) from logits (B, K) and Jacobian (K, B, ...).

    Without ``bounds``: the classic step to the nearest linearized boundary. With the current
    point x (B, ...) and ``bounds``: the nearest class is chosen with outward components at
    saturated pixels masked out, and the step is the exact minimal one inside the box
    (:func:`box_step`), so clipping cannot stall the iteration.
    """
    b, k = logits.shape
    idx = torch.arange(b, device=logits.device)
    grads = jac.transpose(0, 1).flatten(2)  # (B, K, D)
    f = logits - logits[idx, y][:, None]  # (B, K): f'_l = f_l − f_y ≤ 0 while correct
    w = grads - grads[idx, y][:, None, :]  # (B, K, D)
    flat = None if x is None or bounds is None else x.flatten(1)
    if flat is not None and bounds is not None:
        at = flat[:, None, :]
        w = w.masked_fill(((at <= bounds[0]) & (w < 0)) | ((at >= bounds[1]) & (w > 0)), 0.0)
    dual = w.abs().sum(2) if norm == "inf" else w.norm(dim=2)  # (B, K)
    dist = f.abs() / dual.clamp_min(1e-12)
    dist[idx, y] = torch.inf
    best = dist.argmin(1)  # (B,)
    wb, fb = w[idx, best], f[idx, best].abs()  # (B, D), (B,)
    fb = torch.maximum(fb, 1e-6 * dual[idx, best])  # at a tie (f' = 0) still step 1e-6 across
    if flat is not None and bounds is not None:
        room = torch.where(wb > 0, bounds[1] - flat, flat - bounds[0]).clamp_min(0)
        r = box_step(wb, fb, room, norm)
    elif norm == "inf":
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
    plain_iter: int = 3,
) -> MinimalResult:
    """DeepFool (Moosavi-Dezfooli et al. 2016): per-input minimal perturbations in ℓ2 or ℓ∞."""
    norm = check_norm(norm)
    if overshoot < 0 or max_iter < 1 or plain_iter < 0:
        raise ConfigError(f"need overshoot >= 0, max_iter >= 1 and plain_iter >= 0, got "
                          f"{overshoot}, {max_iter}, {plain_iter}")
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
                box = bounds if it >= plain_iter else None
                r = deepfool_step(logits, jac, y[active], norm, xa, box)
                x_adv[active] = (xa + (1 + overshoot) * r).clamp(*bounds)
            iterations[active] += 1
    pert = x_adv - x
    return MinimalResult(norm, x_adv.detach(), pert.detach(), flat_norm(pert, norm), success,
                         iterations)

