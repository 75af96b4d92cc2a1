"""APGD: step-size-free PGD with momentum (the core of AutoAttack).

Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020.

Distance: ℓ∞ (norm "inf") or ℓ2 (norm "2"); projection Π onto the ε-ball, then ``bounds``.
Iteration (η₀ = 2ε, momentum 0.75):
    z = Π(x_k + η·d(∇L(x_k))),  x_{k+1} = Π(x_k + 0.75·(z − x_k) + 0.25·(x_k − x_{k−1})).
At checkpoints (first after 22 % of the steps, then intervals shrinking by 3 % to at least 6 %)
η is halved and the iterate restarts from the best point when fewer than 75 % of the steps since
the last checkpoint raised the loss, or when η was not reduced last time and the best loss has
not improved since.

Losses: "ce" cross-entropy; "dlr" −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3); "dlr-targeted"
−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2), run once per target t among the ``n_targets`` classes
with the highest clean logits after y (z sorted decreasingly as z_π1 ≥ z_π2 ≥ ...).

Arguments: model, x (N, C, H, W) in bounds, y (N,), epsilons (K budgets), norm="inf",
loss="ce", steps=100, restarts=1, n_targets=9, bounds=(0, 1), generator=None (seed 0).

Shapes: returns AttackResult with success (K, N) and x_adv (K, N, C, H, W); an input already
misclassified counts as fooled by itself (x_adv = x), whatever the random start. Budgets run in
ascending order; fooled inputs stop costing work (as in :mod:`rankrobust.attacks.pgd`). Random
starts are drawn per (ε, target, restart) for all N inputs and indexed (:func:`budget_generator`):
an input's result does not depend on the other inputs, which :func:`autoattack` relies on.
APGD-T's target runs share one batch (target-major rows; per input the first target that fooled
it wins, as if they ran one after the other): the same result as T sequential runs in one
chain of ``steps`` iterations instead of T chains (1.9× faster on a small MLP, where per-step
latency dominates; benchmarks/RESULTS.md, bench_eps_grid).

Example::

    res = apgd(model, x, y, [0.1, 0.3], loss="dlr-targeted", n_targets=9)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.base import (
    AttackResult,
    Bounds,
    SingleBudget,
    base_seed,
    budget_generator,
    budgets_attack,
    per_sample,
)
from rankrobust.attacks.perturb import project, random_in_ball, steepest_direction
from rankrobust.errors import ConfigError

LOSSES = ("ce", "dlr", "dlr-targeted")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample (targeted) difference-of-logits-ratio loss, (B,); larger = closer to fooled."""
    z = logits
    idx = torch.arange(len(z), device=z.device)
    zs = z.sort(dim=1, descending=True).values
    zy = z[idx, y]
    if target is None:
        other = z.clone()
        other[idx, y] = -torch.inf
        return -(zy - other.amax(1)) / (zs[:, 0] - zs[:, 2] + 1e-12)
    return -(zy - z[idx, target]) / (zs[:, 0] - 0.5 * (zs[:, 2] + zs[:, 3]) + 1e-12)


def _checkpoints(steps: int) -> set[int]:
    """Iteration counts after which the step size is reconsidered (Croce & Hein 2020, §3.2)."""
    points, p_prev, p = set(), 0.0, 0.22
    while p < 1.0:
        points.add(max(1, int(round(p * steps))))
        p_prev, p = p, p + max(p - p_prev - 0.03, 0.06)
    return points


def apgd_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str,
    steps: int,
    start: torch.Tensor,
    bounds: Bounds,
    loss: str = "ce",
    target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run at one budget (model in eval mode): (x_adv (B, ...), fooled (B,), loss (B,)).

    x_adv is the first fooling iterate (loss +inf) or else the highest-loss iterate (its loss).
    """
    b = x.shape[0]
    e = per_sample(eps, x).contiguous()  # (B, 1, ..., 1)

    def proj(v: torch.Tensor, x0: torch.Tensor, e0: torch.Tensor) -> torch.Tensor:
        return (x0 + project(v - x0, e0, norm)).clamp(*bounds)

    def loss_grad(xa: torch.Tensor, ys: torch.Tensor, ts: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            xa = xa.detach().requires_grad_(True)
            logits = model(xa)
            per = F.cross_entropy(logits, ys, reduction="none") if loss == "ce" else dlr_loss(logits, ys, ts)
            (g,) = torch.autograd.grad(per.sum(), xa)
        return per.detach(), g, logits.argmax(1) != ys

    out_x, fooled = x.clone(), torch.zeros(b, dtype=torch.bool, device=x.device)
    out_loss = torch.full((b,), torch.inf, dtype=x.dtype, device=x.device)
    checkpoints = _checkpoints(steps)
    xa = proj(x + start, x, e)
    cur, grad, hit = loss_grad(xa, y, target)
    s = {  # per-sample state of the inputs still running
        "idx": torch.arange(b, device=x.device), "x0": x, "y": y, "e": e, "xa": xa, "prev": xa,
        "grad": grad, "cur": cur, "best": cur.clone(), "x_best": xa.clone(), "g_best": grad,
        "eta": 2 * e.clone(), "count": torch.zeros(b, device=x.device),
        "best_ckpt": cur.clone(), "reduced": torch.zeros(b, dtype=torch.bool, device=x.device),
    }
    if target is not None:
        s["t"] = target
    last_ckpt = 0
    with torch.no_grad():
        for k in range(steps + 1):
            if hit.any():  # record fooling iterates, drop those inputs
                out_x[s["idx"][hit]] = s["xa"][hit]
                fooled[s["idx"][hit]] = True
                s = {key: v[~hit] for key, v in s.items()}
            if k == steps or not len(s["idx"]):
                break
            xa, prev = s["xa"], s["prev"]
            z = proj(xa + s["eta"] * steepest_direction(s["grad"], norm), s["x0"], s["e"])
            a = 0.75 if k > 0 else 1.0
            new = proj(xa + a * (z - xa) + (1 - a) * (xa - prev), s["x0"], s["e"])
            loss_new, grad, hit = loss_grad(new, s["y"], s.get("t"))
            s["count"] += (loss_new > s["cur"]).float()
            s["prev"], s["xa"], s["grad"], s["cur"] = xa, new, grad, loss_new
            better = loss_new > s["best"]
            s["best"] = torch.where(better, loss_new, s["best"])
            s["x_best"][better], s["g_best"][better] = new[better], grad[better]
            if k + 1 in checkpoints:
                h = k + 1 - last_ckpt
                reduce = (s["count"] < 0.75 * h) | (~s["reduced"] & (s["best"] <= s["best_ckpt"]))
                # an input that fooled at this step keeps that iterate: it is recorded next round
                reduce &= ~hit
                s["eta"][reduce] /= 2
                s["xa"][reduce], s["grad"][reduce] = s["x_best"][reduce], s["g_best"][reduce]
                s["reduced"], s["best_ckpt"] = reduce, s["best"].clone()
                s["count"] = torch.zeros_like(s["count"])
                last_ckpt = k + 1
        out_x[s["idx"]] = s["x_best"]  # not fooled: the highest-loss iterate
        out_loss[s["idx"]] = s["best"]
    return out_x, fooled, out_loss


def apgd_budgets(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    loss: str = "ce",
    steps: int = 100,
    restarts: int = 1,
    n_targets: int = 9,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> SingleBudget:
    """APGD at one budget on any subset of the N inputs x (N, ...), y (N,) (model in eval mode,
    arguments checked): ``attack_one(x[rows], y[rows], eps, rows) -> (x_adv, fooled)``.

    Per input, the result depends only on that input, ε and the generator's seed: the targets
    come from its own clean logits and each random start is drawn for all N inputs from
    :func:`budget_generator` (ε, target rank, restart), then indexed by ``rows``.
    """
    base = base_seed(generator)
    need = {"ce": 2, "dlr": 3, "dlr-targeted": 4}[loss]
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + 1024]) for i in range(0, len(x), 1024)])
    k_classes = int(logits.shape[1])
    if k_classes < need:
        raise ConfigError(f"APGD loss {loss!r} needs at least {need} classes, got {k_classes}")
    # targets: classes other than y by decreasing clean logit, (N, K − 1)
    ranked = logits.argsort(1, descending=True)
    ranked = ranked[ranked != y[:, None]].view(len(x), k_classes - 1)
    runs: list[int | None] = [None]
    if loss == "dlr-targeted":
        runs = list(range(min(n_targets, k_classes - 1)))
    template = x[:1].expand(len(x), *x.shape[1:])  # (N, ...): the shape random starts are drawn in
    wrong = logits.argmax(1) != y  # (N,) misclassified as they are: fooled by x itself

    def attack_one(
        xs: torch.Tensor, ys: torch.Tensor, eps: float, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, fooled = xs.clone(), wrong[rows].clone()
        best = torch.full((len(xs),), -torch.inf, dtype=xs.dtype, device=xs.device)
        if eps == 0:
            return out, fooled
        for restart in range(restarts):
            todo = (~fooled).nonzero().squeeze(1)  # (M,)
            if not len(todo):
                break
            # every target's run in one batch (T·M rows, target-major): each row's run depends
            # only on its input, target and start, so this is the T runs one after the other
            m, t_count = len(todo), len(runs)
            target = None if runs[0] is None else torch.cat([ranked[rows[todo], t] for t in runs])
            start = torch.cat([
                random_in_ball(template, eps, norm, budget_generator(base, eps, rank, restart),
                               full_radius=True)[rows[todo]] for rank in range(t_count)])
            xa, hit, score = apgd_run(model, xs[todo].repeat(t_count, *[1] * (xs.ndim - 1)),
                                      ys[todo].repeat(t_count), eps, norm, steps, start, bounds,
                                      loss, target)
            hit, score = hit.view(t_count, m), score.view(t_count, m)
            xa = xa.view(t_count, m, *xs.shape[1:])
            # per input: the first target that fooled it, else the highest-loss run
            pick = torch.where(hit.any(0), hit.to(torch.int8).argmax(0), score.argmax(0))  # (M,)
            chosen, top = xa[pick, torch.arange(m)], score[pick, torch.arange(m)]
            keep = top > best[todo]
            out[todo[keep]], best[todo[keep]] = chosen[keep], top[keep]
            fooled[todo[hit.any(0)]] = True
        return out, fooled

    return attack_one


def check_apgd(loss: str, steps: int, restarts: int, n_targets: int) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"unknown APGD loss {loss!r}; expected one of {', '.join(LOSSES)}")
    if steps < 1 or restarts < 1 or n_targets < 1:
        raise ConfigError("steps, restarts and n_targets must be at least 1")


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: float | Sequence[float],
    norm: str = "inf",
    loss: str = "ce",
    steps: int = 100,
    restarts: int = 1,
    n_targets: int = 9,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
    keep_adv: bool = True,
) -> AttackResult:
    """APGD-CE / APGD-DLR / APGD-T (Croce & Hein 2020) at every ε in ``epsilons``
    (``keep_adv=False``: no (K, N, ...) examples are kept, ``x_adv`` is None)."""
    check_apgd(loss, steps, restarts, n_targets)
    return budgets_attack(
        model, x, y, epsilons, norm, bounds,
        lambda xs, ys, nm: apgd_budgets(model, xs, ys, nm, loss, steps, restarts, n_targets,
                                        bounds, generator),
        keep_adv)
