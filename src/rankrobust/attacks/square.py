"""Square Attack: score-based random search over squares, no gradients (AutoAttack's member).

Paper: Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020; the variant of AutoAttack (Croce & Hein 2020).

Distance: ℓ∞ (norm "inf") or ℓ2 (norm "2"), inputs clipped to ``bounds``. Only the model's
outputs are used. Loss: the margin m(x) = z_y(x) − max_{j≠y} z_j(x), minimized; an input is fooled
when argmax z ≠ y. A candidate replaces the best point when its margin is lower or it fools.

ℓ∞. Start δ = ε·r, r ∈ {±1}^{C×1×W} (vertical stripes). Iteration i: per input, a window of side
s_i = max(1, round(√(p_i·H·W))) at a uniform position and a sign r_c per channel; the candidate
is clip(x + δ′) with δ′ = δ outside the window and ε·r_c inside it (a vertex of the ball). As
in the original Square Attack (not in AutoAttack's copy), a candidate equal to the current point
is not queried: its signs are flipped (for C = 1 exactly the original's resampling), so no query
is wasted once the squares shrink to a pixel.

ℓ2. Start: a grid of s×s squares (s = ⌊min(H, W)/5⌋), each ±η per channel, scaled to ‖δ‖₂ = ε.
Iteration i: per input two windows W₁, W₂ of odd side s_i ≥ 3; the mass of δ on W₁ ∪ W₂ moves
into W₁ as a new pattern: δ′ = 0 on W₂ and, per channel c on W₁,
    δ′_c = u_c / ‖u_c‖₂ · √(max(ε² − ‖δ‖₂², 0)/C + ‖δ|_{W₁∪W₂}‖₂²),  u_c = r_c·η + δ_c/‖δ_c‖₂,
then δ′ is rescaled to ‖δ′‖₂ = ε and the point clipped. η (s×s) is +1/−1 on the top/bottom half,
each half a sum of concentric rectangles weighted 1/(k+1)², ‖η‖₂ = 1, transposed with chance ½.

Schedule: p_i = p_init / 2^j, j = the number of thresholds (10, 50, 200, 500, 1000, 2000, 4000,
6000, 8000) below i·10000/n_queries (AutoAttack's rescaled schedule).

Arguments: model, x (N, C, H, W) in bounds (also (N, D) → (N, 1, 1, D), (N, C, L) → (N, C, 1, L)),
y (N,), epsilons (K budgets), norm="inf", n_queries=5000 (iterations after the start, one forward
each, as in AutoAttack "standard"), p_init=0.8 (AutoAttack's value), bounds=(0, 1),
generator=None (seed 0).

Shapes: returns AttackResult with success (K, N) and x_adv (K, N, ...): x itself where it is
misclassified, else the first fooling point, else the lowest-margin one. Budgets run in ascending order; inputs leave the batch once fooled.
Every random draw is made for all N inputs at once from a generator per budget
(:func:`~rankrobust.attacks.base.budget_generator`) and indexed: an input's result does not depend
on the other inputs (windows are drawn per input, unlike AutoAttack's one window per batch).

Example::

    res = square(model, x, y, [0.1, 0.3], n_queries=5000, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache

import torch
from torch import nn

from rankrobust.attacks.base import (
    AttackResult,
    Bounds,
    SingleBudget,
    base_seed,
    budget_generator,
    budgets_attack,
)
from rankrobust.errors import ConfigError

THRESHOLDS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(i: int, n_queries: int, p_init: float) -> float:
    """Share p_i of the image a square covers at iteration i (AutoAttack's schedule)."""
    it = int(i / n_queries * 10000)
    return p_init / 2 ** sum(it > t for t in THRESHOLDS)


@cache
def _rectangles(h: int, w: int) -> torch.Tensor:
    """Σ_k 1/(k+1)² over concentric rectangles around the centre of an h×w array, ‖·‖₂ = 1."""
    out = torch.zeros(h, w, dtype=torch.float64)
    ch, cw = h // 2, w // 2
    for k in range(max(ch + 1, cw + 1)):
        out[max(ch - k, 0) : min(ch + k + 1, h), max(cw - k, 0) : min(cw + k + 1, w)] += 1 / (k + 1) ** 2
    return out / out.norm().clamp_min(1e-12)


@cache
def eta(s: int) -> torch.Tensor:
    """The ℓ2 pattern η (s, s), float64: +rectangles on the top half, − on the bottom, ‖η‖₂ = 1."""
    out = torch.cat([_rectangles(s // 2, s), -_rectangles(s - s // 2, s)])
    return out / out.norm().clamp_min(1e-12)


def as_image(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) as is; (N, D) → (N, 1, 1, D); (N, C, L) → (N, C, 1, L) (a view)."""
    if x.ndim == 4:
        return x
    if x.ndim == 2:
        return x.view(x.shape[0], 1, 1, x.shape[1])
    if x.ndim == 3:
        return x.view(x.shape[0], x.shape[1], 1, x.shape[2])
    raise ConfigError(f"square: expected inputs (N, C, H, W), (N, C, L) or (N, D), got {tuple(x.shape)}")


def window(vh: torch.Tensor, vw: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
    """(B, 1, H, W) bool: per input b the s×s square with top-left corner (vh_b, vw_b)."""
    hh, ww = torch.arange(h, device=vh.device), torch.arange(w, device=vh.device)
    inh = (hh >= vh[:, None]) & (hh < vh[:, None] + s)  # (B, H)
    inw = (ww >= vw[:, None]) & (ww < vw[:, None] + s)  # (B, W)
    return (inh[:, :, None] & inw[:, None, :])[:, None]


def l2_candidate(
    x0: torch.Tensor,
    xb: torch.Tensor,
    m1: torch.Tensor,
    m2: torch.Tensor,
    pattern: torch.Tensor,
    r: torch.Tensor,
    eps: float,
    bounds: Bounds,
) -> torch.Tensor:
    """The ℓ2 proposal (module docstring): x0, xb (B, C, H, W); windows m1, m2 (B, 1, H, W);
    ``pattern`` η placed on W₁ (B, 1, H, W); signs r (B, C, 1, 1). Returns clip(x0 + δ′)."""
    c = x0.shape[1]
    delta = xb - x0
    n1 = (delta.square() * m1).sum((2, 3), keepdim=True).sqrt()  # ‖δ_c on W₁‖, (B, C, 1, 1)
    n_img = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # ‖δ‖, (B, 1, 1, 1)
    n_win = (delta * (m1 | m2)).flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # ‖δ on W₁ ∪ W₂‖
    u = (pattern * r + delta / (n1 + 1e-12)) * m1
    size = ((eps**2 - n_img.square()).clamp_min(0) / c + n_win.square()).sqrt()
    u = u / (u.square().sum((2, 3), keepdim=True).sqrt() + 1e-12) * size
    d_new = torch.where(m1, u, torch.where(m2, torch.zeros_like(delta), delta))
    d_norm = d_new.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return (x0 + d_new / (d_norm + 1e-12) * eps).clamp(*bounds)


Draw = Callable[..., torch.Tensor]  # draw(high, *size): (n_total, *size) integer draws on the CPU


def square_start(x: torch.Tensor, eps: float, norm: str, bounds: Bounds, draw: Draw,
                 rows: torch.Tensor) -> torch.Tensor:
    """The first point for x (B, C, H, W) = inputs ``rows``: ℓ∞ vertical stripes x ± ε; ℓ2 a
    centred grid of ±η squares (at most 5×5) scaled to ‖δ‖₂ = ε; clipped to ``bounds``."""
    dev, (_, c, h, w) = x.device, x.shape
    if norm == "inf":
        r = draw(2, c, 1, w)[rows].to(dev, x.dtype) * 2 - 1  # (B, C, 1, W) stripes
        return (x + eps * r).clamp(*bounds)
    s0 = max(min(h, w) // 5, 1)
    nh, nw = min(5, h // s0), min(5, w // s0)
    signs = draw(2, c, nh, nw)[rows].to(dev, x.dtype) * 2 - 1  # (B, C, nh, nw)
    grid = signs.repeat_interleave(s0, 2).repeat_interleave(s0, 3)
    grid = grid * eta(s0).to(dev, x.dtype).repeat(nh, nw)  # (B, C, nh·s0, nw·s0)
    delta = torch.zeros_like(x)
    top, left = (h - nh * s0) // 2, (w - nw * s0) // 2
    delta[:, :, top : top + nh * s0, left : left + nw * s0] = grid
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (x + delta / norms * eps).clamp(*bounds)


def square_proposal(st: dict[str, torch.Tensor], p: float, eps: float, norm: str, bounds: Bounds,
                    draw: Draw) -> torch.Tensor:
    """One query's candidate for the running inputs ``st`` (rows, x0, xb; ℓ∞ also the vertex
    values hi, lo): a square covering a share ``p`` of the image (module docstring)."""
    rs, x0, xb = st["rows"], st["x0"], st["xb"]
    dev, (_, c, h, w) = x0.device, x0.shape
    if norm == "inf":
        s = min(max(int(round(math.sqrt(p * h * w))), 1), h, w)
        m1 = window(draw(h - s + 1)[rs].to(dev), draw(w - s + 1)[rs].to(dev), s, h, w)
        up = draw(2, c)[rs].to(dev).bool()[:, :, None, None]  # (B, C, 1, 1)
        x_new = torch.where(m1, torch.where(up, st["hi"], st["lo"]), xb)
        same = (x_new == xb).flatten(1).all(1).view(-1, 1, 1, 1)  # a wasted query
        if same.any():  # the window already holds these signs: flip them
            x_new = torch.where(m1, torch.where(up ^ same, st["hi"], st["lo"]), xb)
        return x_new
    s = max(int(round(math.sqrt(p * h * w))), 3)
    s = min(s + 1 - s % 2, h, w)  # odd, fits the image
    vh, vw = draw(h - s + 1)[rs].to(dev), draw(w - s + 1)[rs].to(dev)
    m2 = window(draw(h - s + 1)[rs].to(dev), draw(w - s + 1)[rs].to(dev), s, h, w)
    flip = draw(2)[rs].to(dev).bool()[:, None, None]  # η transposed
    r = draw(2, c)[rs].to(dev, x0.dtype)[:, :, None, None] * 2 - 1  # (B, C, 1, 1)
    e = eta(s).to(dev, x0.dtype)
    ph = (torch.arange(h, device=dev) - vh[:, None]).clamp(0, s - 1)  # (B, H)
    pw = (torch.arange(w, device=dev) - vw[:, None]).clamp(0, s - 1)  # (B, W)
    pattern = torch.where(flip, e[pw[:, None, :], ph[:, :, None]],
                          e[ph[:, :, None], pw[:, None, :]])[:, None]  # (B, 1, H, W)
    return l2_candidate(x0, xb, window(vh, vw, s, h, w), m2, pattern, r, eps, bounds)


def square_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str,
    n_queries: int,
    p_init: float,
    bounds: Bounds,
    gen: torch.Generator,
    rows: torch.Tensor,
    n_total: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Square run at one budget on x (B, ...) = inputs ``rows`` of n_total (model in eval
    mode): (x_adv (B, ...), fooled (B,)). Draws come from ``gen`` for all n_total inputs."""
    shape, dev = x.shape, x.device
    xi = as_image(x)  # (B, C, H, W)
    b = xi.shape[0]
    rows = rows.cpu()

    def margin(xc: torch.Tensor, yc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = model(xc.reshape(-1, *shape[1:]))  # (B, K)
        zy = z.gather(1, yc[:, None]).squeeze(1)
        return zy - z.scatter(1, yc[:, None], -torch.inf).amax(1), z.argmax(1) != yc

    def ints(high: int, *size: int) -> torch.Tensor:  # (n_total, *size) draws on the CPU
        return torch.randint(0, high, (n_total, *size), generator=gen)

    with torch.no_grad():
        wrong = margin(xi, y)[1]  # misclassified as it is: fooled by x itself
        if eps == 0 or wrong.all():
            return x.clone(), wrong
        if wrong.any():
            keep = (~wrong).nonzero().squeeze(1)
            xa, hit = square_run(model, x[keep], y[keep], eps, norm, n_queries, p_init, bounds,
                                 gen, rows[keep.cpu()], n_total)
            out, fooled = x.clone(), wrong.clone()
            out[keep], fooled[keep] = xa, hit
            return out, fooled
        xb = square_start(xi, eps, norm, bounds, ints, rows)
        mb, hit = margin(xb, y)
        out, fooled = xi.clone(), torch.zeros(b, dtype=torch.bool, device=dev)
        # state of the inputs still running: local index, global row, x, y, best point, margin
        st = {"i": torch.arange(b, device=dev), "rows": rows, "x0": xi, "y": y, "xb": xb, "mb": mb}
        if norm == "inf":  # the two vertex values of each coordinate
            st["hi"], st["lo"] = (xi + eps).clamp(*bounds), (xi - eps).clamp(*bounds)
        for it in range(n_queries + 1):
            if hit.any():  # record fooling points, drop those inputs
                out[st["i"][hit]], fooled[st["i"][hit]] = st["xb"][hit], True
                st = {k: v[(~hit).to(v.device)] for k, v in st.items()}
            if it == n_queries or not len(st["i"]):
                break
            xb = st["xb"]
            x_new = square_proposal(st, p_schedule(it, n_queries, p_init), eps, norm, bounds, ints)
            m_new, hit = margin(x_new, st["y"])
            better = (m_new < st["mb"]) | hit
            st["xb"] = torch.where(better.view(-1, 1, 1, 1), x_new, xb)
            st["mb"] = torch.where(better, m_new, st["mb"])
        out[st["i"]] = st["xb"]  # not fooled: the lowest-margin point
    return out.view(shape), fooled


def square_budgets(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    n_queries: int = 5000,
    p_init: float = 0.8,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> SingleBudget:
    """Square at one budget on any subset of the N inputs x (N, ...), y (N,) (model in eval mode,
    arguments checked): ``attack_one(x[rows], y[rows], eps, rows) -> (x_adv, fooled)``."""
    base, n_total = base_seed(generator), len(x)
    as_image(x)  # shape check

    def attack_one(
        xs: torch.Tensor, ys: torch.Tensor, eps: float, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return square_run(model, xs, ys, eps, norm, n_queries, p_init, bounds,
                          budget_generator(base, eps), rows, n_total)

    return attack_one


def check_square(n_queries: int, p_init: float) -> None:
    if n_queries < 1:
        raise ConfigError(f"n_queries must be at least 1, got {n_queries}")
    if not 0 < p_init <= 1:
        raise ConfigError(f"p_init must be in (0, 1], got {p_init}")


def square(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: float | Sequence[float],
    norm: str = "inf",
    n_queries: int = 5000,
    p_init: float = 0.8,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
    keep_adv: bool = True,
) -> AttackResult:
    """Square Attack (Andriushchenko et al. 2020) at every ε in ``epsilons`` (``keep_adv=False``:
    no (K, N, ...) examples are kept, ``x_adv`` is None)."""
    check_square(n_queries, p_init)
    return budgets_attack(
        model, x, y, epsilons, norm, bounds,
        lambda xs, ys, nm: square_budgets(model, xs, ys, nm, n_queries, p_init, bounds, generator),
        keep_adv)
