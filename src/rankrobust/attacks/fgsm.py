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
not yet fooled; ``search="bisect"`` finds each input's smallest fooling budget on the grid with
about two forwards per input instead of up to K: each probe's place is guessed, first from the
linearized loss at x (the clean logits come with the gradient), then by interpolating the logit
margins of earlier probes; what is left after three guided rounds is bisected, or swept in one
forward once few grid points remain. Budgets ε = 0 cost nothing for x within the bounds (the
point is x, whose prediction is known). The search is exact when fooling is monotone along the
ray (always for affine models) and otherwise may miss a success but never reports a false one
(x_adv of an unsuccessful entry is then the FGSM point at ε_k, unverified).

Example::

    res = fgsm(model, x, y, [0.05, 0.1, 0.2])
    res.success.float().mean(1)  # fooling ratio per ε (with y = clean predictions)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.base import (
    AttackResult,
    check_epsilons,
    check_norm,
    eval_mode,
    predict,
    prepare,
)
from rankrobust.attacks.perturb import Bounds, steepest_direction
from rankrobust.errors import ConfigError

_GUIDED_ROUNDS = 3  # probes placed by the margin model; later rounds bisect (log₂ bound)
_SWEEP_EXTRA = 32  # from round 3 on, probe whole brackets once they hold ≤ this many extra points


def _gradient_and_logits(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """∇ₓ Σᵢ CE(model(xᵢ), yᵢ) and the clean logits of the same forward pass."""
    xg = x.detach().requires_grad_(True)
    logits = model(xg)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xg)
    return grad, logits.detach()


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{c≠y} z_c, (N,): > 0 where y wins (a guide only; success is argmax ≠ y)."""
    others = logits.scatter(1, y[:, None], float("-inf"))
    return logits.gather(1, y[:, None]).squeeze(1) - others.amax(1)


def _ray(
    x: torch.Tensor, d: torch.Tensor, e: torch.Tensor, bounds: Bounds, rows: torch.Tensor | None
) -> torch.Tensor:
    """clip(x + e·d) for the given rows of x and d (all rows if None), e (M,) per row."""
    if rows is not None:
        x, d = x.index_select(0, rows), d.index_select(0, rows)
    return torch.addcmul(x, e.view(-1, *([1] * (x.ndim - 1))), d).clamp_(*bounds)


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _linear_prediction(
    x: torch.Tensor,
    y: torch.Tensor,
    d: torch.Tensor,
    grad: torch.Tensor,
    logits: torch.Tensor,
    grid: torch.Tensor,
    bounds: Bounds,
) -> torch.Tensor:
    """Predicted first fooling grid position (N,) in [0, K] from first-order information.

    With q the softmax over the wrong classes, dL = −(1 − p_y)·E_q[d margin], so the margin m₀
    is predicted to close where the linearized loss along the clipped ray has grown by
    (1 − p_y)·m₀. Its rate is taken at the middle budget ε_m, ⟨g, clip(x + ε_m·d) − x⟩ / ε_m,
    which discounts the pixels that the bounds stop (many, on MNIST).
    """
    scale = float(grid[len(grid) // 2]) or float(grid[-1]) or 1.0
    moved = (x + scale * d).clamp_(*bounds).sub_(x)
    slope = (grad.flatten(1) * moved.flatten(1)).sum(1) / scale  # ≥ 0
    others = logits.scatter(1, y[:, None], float("-inf"))
    target = _margin(logits, y) * (others.logsumexp(1) - logits.logsumexp(1)).exp()
    return (grid[None, :] * slope[:, None] < target[:, None]).sum(1)


def _guided_search(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    d: torch.Tensor,
    grad: torch.Tensor,
    logits: torch.Tensor,
    grid: torch.Tensor,
    bounds: Bounds,
) -> torch.Tensor:
    """Smallest fooling position on the sorted ``grid`` per input, (N,) in [0, K] (K: none).

    Keeps a bracket first ∈ [lo, hi] that is exact when fooling is monotone along the ray: a
    probe at j that fools sets hi = j, one that does not sets lo = j + 1, and hi < K only ever
    holds a probed (verified) fooling position. Where each probe goes is a guess: first from
    the linearized loss (:func:`_linear_prediction`), then by interpolating the logit margins
    of the probes already made (piecewise linear along the ray for ReLU nets), so that most
    inputs need two probes (the grid points on either side of the crossing); after
    ``_GUIDED_ROUNDS`` rounds the remaining brackets are bisected. From the third round on,
    once the brackets hold few grid points, all of them are probed in one last forward (the
    first fooling one is taken: still a verified success, and the same under monotonicity).
    """
    n, k = x.shape[0], grid.shape[0]
    lo = torch.zeros(n, dtype=torch.long, device=x.device)
    hi = torch.full((n,), k, dtype=torch.long, device=x.device)
    clean_fooled = logits.argmax(1) != y
    zeros = int((grid == 0).sum())
    if zeros and bool(((x >= bounds[0]) & (x <= bounds[1])).all()):
        # grid points at ε = 0 are x itself, whose prediction is known from the clean logits
        hi[clean_fooled] = 0
        lo[~clean_fooled] = zeros
    nan = torch.full((n,), float("nan"), dtype=x.dtype, device=x.device)
    e_a, m_a = torch.zeros_like(nan), _margin(logits, y)  # last point that did not fool
    e_p, m_p = nan.clone(), nan.clone()  # the one before it (for extrapolation)
    e_b, m_b = nan.clone(), nan.clone()  # last point that fooled
    guess = _linear_prediction(x, y, d, grad, logits, grid, bounds)
    rounds = 0
    while True:
        todo = (lo < hi).nonzero().squeeze(1)
        if not len(todo):
            return hi
        lo_t, hi_t = lo[todo], hi[todo]
        width = hi_t - lo_t
        if rounds >= 2 and int(width.sum()) <= len(todo) + _SWEEP_EXTRA:
            # few candidates left: probe all of them in one forward instead of more rounds
            rows = todo.repeat_interleave(width)
            offset = torch.arange(len(rows), device=x.device)
            offset -= (width.cumsum(0) - width).repeat_interleave(width)
            q = lo[rows] + offset
            hit = _logits(model, _ray(x, d, grid[q], bounds, rows)).argmax(1) != y[rows]
            hi.scatter_reduce_(0, rows[hit], q[hit], "amin")
            return hi
        if rounds >= _GUIDED_ROUNDS:
            q = (lo_t + hi_t) // 2
        else:
            if rounds == 0:
                pos = guess[todo]
            else:
                ea, ma = e_a[todo], m_a[todo]
                fooled_known = hi_t < k
                # interpolate between the bracket's ends, else extrapolate the last two misses
                slope = torch.where(
                    fooled_known,
                    (m_b[todo] - ma) / (e_b[todo] - ea),
                    (ma - m_p[todo]) / (ea - e_p[todo]),
                )
                cross = torch.where(slope < 0, ea - ma / slope, torch.full_like(ea, float("inf")))
                pos = torch.bucketize(cross.nan_to_num(nan=float("inf")), grid)
                pos = torch.where(cross.isnan(), (lo_t + hi_t) // 2, pos)
            pos = torch.minimum(torch.maximum(pos, lo_t), hi_t)
            q = torch.where(pos >= hi_t, hi_t - 1, pos)  # confirm the miss just below a known fool
        e = grid[q]
        z = _logits(model, _ray(x, d, e, bounds, None if len(todo) == n else todo))
        hit = z.argmax(1) != y[todo]
        m = _margin(z, y[todo])
        hi[todo[hit]] = q[hit]
        e_b[todo[hit]], m_b[todo[hit]] = e[hit], m[hit]
        miss = todo[~hit]
        lo[miss] = q[~hit] + 1
        e_p[miss], m_p[miss] = e_a[miss], m_a[miss]
        e_a[miss], m_a[miss] = e[~hit], m[~hit]
        rounds += 1

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
        grad, logits = _gradient_and_logits(model, x, y)
        d = steepest_direction(grad, norm)  # (N, ...) unit step
        order = sorted(range(len(eps)), key=lambda i: eps[i])
        grid = torch.tensor([eps[i] for i in order], dtype=x.dtype, device=x.device)

        def point(idx: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
            """x + ε_j·d for inputs idx at grid positions j (both (M,))."""
            e = grid[j].view(-1, *([1] * (x.ndim - 1)))
            return torch.addcmul(x[idx], e, d[idx]).clamp_(*bounds)  # as x_adv below

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
            first = _guided_search(model, x, y, d, grad, logits, grid, bounds)

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
