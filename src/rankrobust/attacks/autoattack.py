"""AutoAttack: an ensemble of parameter-free attacks, each run on the points the others left.

Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 ("standard" version).

Distance: ℓ∞ (norm "inf") or ℓ2 (norm "2"). At each budget ε (ascending), the members run in
turn, each only on the inputs that no earlier member, and no smaller budget, has fooled:

    clean (misclassified without perturbation) → APGD-CE → APGD-T (DLR loss, top-``n_targets``
    target classes) → Square (gradient-free, ``n_queries`` queries),

and an input counts as broken at ε when any member breaks it: success_k = ⋃_m success_{m,k}.
A member whose loss needs more classes than the model has (APGD-T: 4, APGD-DLR: 3) is skipped.
Robust accuracy at ε_k with y = true labels is 1 − mean(success[k]). FAB-T, AutoAttack's third
member, is not implemented: on the benchmark models the ensemble without it is at least as strong
as torchattacks' AutoAttack with it.

Members are deterministic given ``seed``: each gets its own ``torch.Generator().manual_seed(seed)``
and an input's result does not depend on which other inputs it runs with
(:func:`~rankrobust.attacks.base.budget_generator`). Hence, up to float rounding, the ensemble
fools a superset of what any member fools alone with the same seed: ``apgd(..., loss="ce",
generator=torch.Generator().manual_seed(seed))``, ``apgd(..., loss="dlr-targeted", ...)``,
``square(...)``.

Arguments: model, x (N, C, H, W) in bounds, y (N,) (true labels for robust accuracy; clean
predictions for the fooling ratio), epsilons (K budgets), norm="inf", members=("apgd-ce",
"apgd-t", "square") (any of MEMBERS, in order), steps=100 (APGD iterations per run, as in
AutoAttack), restarts=1, n_targets=9, n_queries=2500, p_init=0.8 (Square), bounds=(0, 1), seed=0,
grid=False, bisect=0 (0..20), keep_adv=True.

Budget choice: Square gets 2500 queries, half of AutoAttack's 5000, so that the ensemble with
AutoAttack's 100-step APGD-CE / APGD-T costs less than torchattacks' AutoAttack (which runs its
APGD members for 10 steps): 0.84–0.87× its wall time, at least as strong at every ε on the
benchmark models (benchmarks/bench_autoattack.py; Square alone at 2500 queries matched
torchattacks' Square at 5000 there). Our Square never queries an unchanged point, which
AutoAttack's copy does for ~30 % of its queries (measured on a PGD-trained LeNet-5, ε = 0.3), so
2500 of ours are worth ≈ 3600 of AutoAttack's. ``n_queries=5000`` gives AutoAttack's budget.

ε grid (``grid=True``, what studies evaluate with): budgets run from the largest down, APGD-CE →
APGD-T at every budget and Square only at the largest, on its survivors; a smaller budget
attacks only the inputs broken at the next larger one (ℓ∞ balls nest: an input that resists at
ε resists at every smaller budget). The largest budget's row is then exactly AutoAttack at that
budget alone, and the grid costs ≈ one AutoAttack at its largest budget plus one APGD run per
broken input (:mod:`rankrobust.attacks.grid`; benchmarks/bench_eps_grid.py). ``bisect=t``
narrows each input's minimal budget ``eps_min`` by t bisection steps between the smallest budget
that broke it and the next smaller one, with the members of the smaller budgets (APGD-CE →
APGD-T with ``grid``; every member without).

Shapes: returns :class:`EnsembleResult`: success (K, N), x_adv (K, N, C, H, W) (None with
``keep_adv=False``), broken_by (K, N) long (index into ``names``, −1 = unbroken), names
("clean", *members) and eps_min (N,) float64: the smallest budget that broke each input (0:
misclassified as it is; NaN: never broken), refined by bisection when ``bisect`` > 0.

Example::

    res = autoattack(model, x, y, [0.1, 0.2, 0.3])
    1 - res.success.float().mean(1)  # robust accuracy per ε
    res.counts()                     # [{"clean": 12, "apgd-ce": 80, ...}, ...] per ε
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rankrobust.attacks.apgd import apgd_budgets, check_apgd
from rankrobust.attacks.base import (
    AttackResult,
    Bounds,
    SingleBudget,
    check_epsilons,
    check_norm,
    ensemble_budgets,
    eval_mode,
    output_classes,
    predict,
    prepare,
)
from rankrobust.attacks.grid import bisect_budgets, descending_budgets, first_success
from rankrobust.attacks.square import check_square, square_budgets
from rankrobust.errors import ConfigError


@dataclass(frozen=True)
class Budgets:
    """The members' settings: AutoAttack "standard", but Square at 2500 queries (see above)."""

    steps: int = 100
    restarts: int = 1
    n_targets: int = 9
    n_queries: int = 2500
    p_init: float = 0.8


# name → (model, x (N, ...), y (N,), norm, settings, bounds, generator) → one-budget attack
Member = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, str, Budgets, Bounds, torch.Generator], SingleBudget
]


def _apgd_member(loss: str) -> Member:
    def build(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, b: Budgets,
              bounds: Bounds, gen: torch.Generator) -> SingleBudget:
        return apgd_budgets(model, x, y, norm, loss, b.steps, b.restarts, b.n_targets, bounds, gen)

    return build


def _square_member(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, b: Budgets,
                   bounds: Bounds, gen: torch.Generator) -> SingleBudget:
    return square_budgets(model, x, y, norm, b.n_queries, b.p_init, bounds, gen)


MEMBERS: dict[str, Member] = {
    "apgd-ce": _apgd_member("ce"),
    "apgd-dlr": _apgd_member("dlr"),
    "apgd-t": _apgd_member("dlr-targeted"),
    "square": _square_member,
}
STANDARD = ("apgd-ce", "apgd-t", "square")
MIN_CLASSES = {"apgd-ce": 2, "apgd-dlr": 3, "apgd-t": 4, "square": 2}  # fewer: the member is skipped
TOP_ONLY = frozenset({"square"})  # with grid=True: run at the largest budget only
MAX_BISECT = 20  # ε resolution (ε_k − ε_{k−1})/2^20: below float32 noise of any image budget


@dataclass(repr=False)  # AttackResult's summary, not the tensors
class EnsembleResult(AttackResult):
    """An AttackResult plus which member broke each input: ``broken_by`` (K, N) long, an index
    into ``names`` (``names[0]`` = "clean": misclassified without perturbation), −1 = unbroken."""

    broken_by: torch.Tensor
    names: tuple[str, ...]
    eps_min: torch.Tensor | None = None  # (N,) float64: smallest budget that broke each input

    def counts(self) -> list[dict[str, int]]:
        """Per budget (in the given order), the number of inputs each member broke."""
        table = torch.stack([(self.broken_by == m).sum(1) for m in range(len(self.names))], 1)
        return [dict(zip(self.names, map(int, row), strict=True)) for row in table.cpu()]


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: float | Sequence[float],
    norm: str = "inf",
    *,
    members: Sequence[str] = STANDARD,
    steps: int = 100,
    restarts: int = 1,
    n_targets: int = 9,
    n_queries: int = 2500,
    p_init: float = 0.8,
    bounds: Bounds = (0.0, 1.0),
    seed: int = 0,
    grid: bool = False,
    bisect: int = 0,
    keep_adv: bool = True,
) -> EnsembleResult:
    """AutoAttack (Croce & Hein 2020; "standard" without FAB-T, Square at ``n_queries``) at every
    ε in ``epsilons``; ``grid``: the ε-grid schedule, ``bisect``: steps refining ``eps_min``
    (module docstring)."""
    norm = check_norm(norm)
    eps_list = check_epsilons(epsilons)
    if isinstance(bisect, bool) or not isinstance(bisect, int) or not 0 <= bisect <= MAX_BISECT:
        raise ConfigError(f"bisect: expected an integer in 0..{MAX_BISECT}, got {bisect!r}")
    unknown = [m for m in members if m not in MEMBERS]
    if unknown or not members or len(set(members)) != len(members):
        raise ConfigError(f"members: expected distinct names from {', '.join(MEMBERS)}, "
                          f"got {list(members)}")
    check_apgd("ce", steps, restarts, n_targets)
    check_square(n_queries, p_init)
    budgets = Budgets(steps, restarts, n_targets, n_queries, p_init)
    x, y = prepare(model, x, y, bounds)
    with eval_mode(model):
        wrong = predict(model, x) != y  # (N,)

        def clean(xs: torch.Tensor, ys: torch.Tensor, eps: float, rows: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
            return xs.clone(), wrong[rows]

        def skipped(xs: torch.Tensor, ys: torch.Tensor, eps: float, rows: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
            return xs.clone(), torch.zeros(len(xs), dtype=torch.bool, device=xs.device)

        def unless_zero(attack_one: SingleBudget) -> SingleBudget:
            def run(xs: torch.Tensor, ys: torch.Tensor, eps: float, rows: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
                if eps == 0:  # x itself is the only point: "clean" has judged it
                    return skipped(xs, ys, eps, rows)
                return attack_one(xs, ys, eps, rows)

            return run

        k_classes = output_classes(model, x)
        runs = [clean] + [
            unless_zero(MEMBERS[m](model, x, y, norm, budgets, bounds,
                                   torch.Generator().manual_seed(seed)))
            if k_classes >= MIN_CLASSES[m] else skipped
            for m in members
        ]
        names = ("clean", *members)
        top_only = {i for i, m in enumerate(names) if m in TOP_ONLY} if grid else set()
        if grid:
            result, broken_by = descending_budgets(x, y, eps_list, norm, runs, top_only, keep_adv)
        else:
            result, broken_by = ensemble_budgets(x, y, eps_list, norm, runs, keep_adv)
        eps_min = torch.where(wrong, 0.0, first_success(result.success, eps_list))
        if bisect:
            eps_min = bisect_budgets(x, y, eps_list, eps_min,
                                     [r for i, r in enumerate(runs) if i not in top_only], bisect)
    return EnsembleResult(result.epsilons, norm, result.success, result.x_adv, broken_by, names,
                          eps_min)
