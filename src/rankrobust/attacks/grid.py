"""An attack over an ε grid at the cost of little more than its largest budget, and per-input
minimal budgets refined by bisection.

ℓ_p balls nest: an input broken at ε_j is broken at every ε_k ≥ ε_j, and an input that resists
at ε_k is *reported* robust at every smaller budget. :func:`descending_budgets` exploits the
second half: budgets run from the largest down, and a budget attacks only the inputs broken at
the next larger one (the others are robust there by nesting). Each input then costs one full
attack where it first resists (plus short runs where it breaks, since broken inputs leave a
run at once), so the grid costs ≈ its largest budget on robust networks. Ascending order with
reuse (:func:`~rankrobust.attacks.base.ensemble_budgets`) pays a full attack for every robust
input at *every* budget: ≈ K× the largest budget on an adversarially trained network.

The result at the largest budget is exactly the ensemble at that budget alone (same members,
same seeds: each input's result depends only on itself, ε and the seed), and success is nested
by construction: success[k] ⊆ success[j] for ε_k ≤ ε_j.

Minimal budget of input i (:func:`first_success`): ε_min(i) = min {ε_k : success[k, i]}
(NaN when never broken). :func:`bisect_budgets` narrows it: with hi = ε_min(i) and lo = the
next smaller grid budget (0 below the smallest), each step attacks at mid = (lo + hi)/2 and
keeps hi = mid when broken, lo = mid otherwise; after t steps ε_min ∈ (lo, hi] with
hi − lo = (ε_k − ε_{k−1})/2^t, and hi is a budget at which the attack broke the input. Inputs
sharing an interval share each step's ε, so a step is one attack call per distinct interval.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from rankrobust.attacks.base import AttackResult, SingleBudget


def descending_budgets(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: list[float],
    norm: str,
    members: Sequence[SingleBudget],
    top_only: Collection[int] = (),
    keep_adv: bool = False,
) -> tuple[AttackResult, torch.Tensor]:
    """The ``members`` in turn at each budget, largest budget first; a smaller budget attacks
    only the inputs broken at the next larger one. Members whose index is in ``top_only`` run at
    the largest budget only. Equal budgets share one attack.

    Returns the AttackResult (``x_adv`` (K, N, ...) only with ``keep_adv``: an input not
    attacked at ε_k keeps x itself) and ``broken_by`` (K, N) long, the index of the member that
    broke input i at ε_k, −1 where none did.
    """
    n, k_count = x.shape[0], len(epsilons)
    success = torch.zeros(k_count, n, dtype=torch.bool, device=x.device)
    broken_by = torch.full((k_count, n), -1, dtype=torch.long, device=x.device)
    x_adv = x.expand(k_count, *x.shape).clone() if keep_adv else None  # (K, N, ...)
    active = torch.ones(n, dtype=torch.bool, device=x.device)  # broken at the larger budget
    for j, value in enumerate(sorted(set(epsilons), reverse=True)):
        same = [k for k, e in enumerate(epsilons) if e == value]
        by = torch.full((n,), -1, dtype=torch.long, device=x.device)
        todo = active.nonzero().squeeze(1)
        for m, attack_one in enumerate(members):
            if not len(todo):
                break
            if j > 0 and m in top_only:
                continue
            xa, hit = attack_one(x[todo], y[todo], value, todo)
            if x_adv is not None:
                x_adv[same[0], todo] = xa
            by[todo[hit]] = m
            todo = todo[~hit]
        active = by >= 0
        for k in same:
            success[k], broken_by[k] = active, by
            if x_adv is not None:
                x_adv[k] = x_adv[same[0]]
    return AttackResult(list(epsilons), norm, success, x_adv), broken_by


def first_success(success: torch.Tensor, epsilons: Sequence[float]) -> torch.Tensor:
    """ε_min (N,) float64 from success (K, N): the smallest ε_k with success[k, i], NaN where
    no budget succeeded (budgets in any order)."""
    eps = torch.tensor(list(epsilons), dtype=torch.float64, device=success.device)[:, None]
    found = torch.where(success, eps, torch.inf).amin(0) if len(eps) else \
        torch.full(success.shape[1:], torch.inf, dtype=torch.float64, device=success.device)
    return torch.where(torch.isinf(found), torch.nan, found)


def bisect_budgets(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: Sequence[float],
    eps_min: torch.Tensor,
    members: Sequence[SingleBudget],
    steps: int,
) -> torch.Tensor:
    """``eps_min`` (N,) (from :func:`first_success`) narrowed by ``steps`` bisection steps per
    input between it and the next smaller grid budget (module docstring). Inputs with ε_min 0
    (broken without perturbation) or NaN (never broken) are left as they are. Each step runs the
    ``members`` in turn, each on the inputs no earlier member broke, at one ε per interval."""
    grid = sorted(set(float(e) for e in epsilons))
    hi = eps_min.clone()
    lo = torch.zeros_like(hi)
    for below, above in zip([0.0, *grid[:-1]], grid, strict=True):
        lo[hi == above] = below
    todo = ~torch.isnan(hi) & (hi > 0)
    for _ in range(steps):
        mid = torch.where(todo, (lo + hi) / 2, torch.nan)
        for value in sorted(set(mid[todo].tolist())):
            rows = (mid == value).nonzero().squeeze(1)
            broken = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
            left = torch.arange(len(rows), device=x.device)
            for attack_one in members:
                if not len(left):
                    break
                _, hit = attack_one(x[rows[left]], y[rows[left]], value, rows[left])
                broken[left[hit]] = True
                left = left[~hit]
            hi[rows[broken]] = value
            lo[rows[~broken]] = value
    return hi
