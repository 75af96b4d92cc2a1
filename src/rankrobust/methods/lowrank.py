"""``lowrank``: train each selected weight directly in factorized form W = U·V of rank r.

A weight read as a matrix W (m, n) (a conv kernel (out, in, kh, kw) as (out, in·kh·kw)) is
replaced by the product U (m, r) · V (r, n) through ``torch.nn.utils.parametrize``: ``module.weight``
is computed as U·V on every access, and U, V are the trained parameters. They start from the
truncated SVD of the default initialization, W₀ ≈ U_r·(Σ_r V_rᵀ) (U orthonormal columns), the
best rank-r approximation of W₀ in every unitarily invariant norm (Eckart–Young). Layers where
r ≥ min(m, n) are left as they are (a factorization could not lower their rank), and so is the
output layer unless ``factorize_output`` (a rank-r classifier separates at most r + 1 classes,
so a 10-class output at rank 3 caps accuracy whatever the training).

Rank per layer: ``rank`` (r = min(rank, min(m, n))) or ``rank_ratio`` (r = ⌈ratio · min(m, n)⌉);
the default is rank_ratio = 0.25. Optional ``ortho`` > 0 adds the soft penalty
ortho·Σ‖UᵀU − I‖²_F that keeps U's columns near-orthonormal (as in robust low-rank training,
Savostianova et al., NeurIPS 2023). Checkpoints store the effective W = U·V, so ``analyze``
reports its structure, with numerical rank ≤ r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize as P

from rankrobust.configuration import require
from rankrobust.errors import ConfigError
from rankrobust.methods.base import Penalty, StepInfo, TrainingMethod, finite_nonneg, register
from rankrobust.regularizers import WeightRef, select_weights

DEFAULT_RATIO = 0.25


class Factorized(nn.Module):
    """Parametrization W = (U·V).reshape(shape): forward(U, V), right_inverse(W) → (U, V)."""

    def __init__(self, shape: tuple[int, ...], rank: int) -> None:
        super().__init__()
        self.shape, self.rank = tuple(shape), int(rank)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u @ v).reshape(self.shape)  # (m, r) @ (r, n) → weight shape

    @torch.no_grad()
    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Truncated SVD (float64): U = U_r (m, r), V = Σ_r V_rᵀ (r, n)."""
        w = weight.reshape(weight.shape[0], -1).double()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        r = self.rank
        return (u[:, :r].to(weight.dtype).contiguous(),
                (s[:r, None] * vh[:r]).to(weight.dtype).contiguous())


def layer_rank(rows: int, cols: int, rank: int | None, ratio: float | None) -> int:
    """r for one (rows, cols) matrix: min(rank, min(rows, cols)), or ⌈ratio·min(rows, cols)⌉."""
    full = min(rows, cols)
    if rank is not None:
        return min(rank, full)
    return max(1, math.ceil((DEFAULT_RATIO if ratio is None else ratio) * full - 1e-9))


def factors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(module path, U) of every factorized weight of ``model``."""
    found = []
    for path, module in model.named_modules():
        if P.is_parametrized(module, "weight") and isinstance(
            module.parametrizations.weight[0], Factorized  # type: ignore[index,union-attr]
        ):
            found.append((path, module.parametrizations.weight.original0))  # type: ignore[union-attr]
    return found


@register
@dataclass(frozen=True)
class LowRank(TrainingMethod):
    """Hard rank budget: each selected weight trained as U·V with r = ``rank`` or ratio·min(m, n)."""

    name = "lowrank"
    label = "low-rank U·V"
    color = "#01665e"
    kind = "parametrized"
    description = "factorized training W = U·V with a hard rank budget (rank or rank_ratio)"
    swept = ("rank", "rank_ratio")
    # Smaller ranks are the stronger setting: the λ rule ranks settings by descending values.
    stronger = -1

    rank: int | None = None
    rank_ratio: float | None = None
    ortho: float = 0.0
    layers: str = "all"
    factorize_output: bool = False

    def __post_init__(self) -> None:
        require(self.rank is None or self.rank_ratio is None,
                "give rank or rank_ratio, not both")
        require(self.rank is None or self.rank >= 1, f"rank must be ≥ 1, got {self.rank}")
        require(self.rank_ratio is None or 0 < self.rank_ratio <= 1,
                f"rank_ratio must be in (0, 1], got {self.rank_ratio}")
        finite_nonneg(self.ortho, "ortho")

    def targets(self, model: nn.Module) -> list[tuple[WeightRef, int]]:
        """(weight, rank r) of every weight this method factorizes in ``model``; ConfigError
        when there is none (the method would train a natural network under its label)."""
        super().check_model(model)  # the layers pattern selects some weight
        output = select_weights(model, "all")[-1].module
        chosen = []
        for ref in select_weights(model, self.layers):
            if ref.module is output and not self.factorize_output:
                continue
            rows, cols = ref.shape
            r = layer_rank(rows, cols, self.rank, self.rank_ratio)
            if r < min(rows, cols):
                chosen.append((ref, r))
        if not chosen:
            raise ConfigError(
                f"method 'lowrank': layers {self.layers!r} selects no layer it would factorize "
                "(the output layer stays full rank unless factorize_output; a layer whose rank "
                f"r ≥ min(m, n) is left as it is); it would change nothing")
        return chosen

    def check_model(self, model: nn.Module) -> None:
        self.targets(model)

    def parametrize(self, model: nn.Module) -> None:
        for ref, r in self.targets(model):
            P.register_parametrization(ref.module, ref.param,
                                       Factorized(tuple(ref.parameter.shape), r))

    def regularize(self, model: nn.Module) -> Penalty:
        if self.ortho <= 0:
            return Penalty()
        us = [u for _, u in factors(model)]
        lam = float(self.ortho)

        def orthogonality(info: StepInfo) -> torch.Tensor:
            total = sum(
                ((u.T @ u) - torch.eye(u.shape[1], dtype=u.dtype, device=u.device)).pow(2).sum()
                for u in us
            )
            return lam * torch.as_tensor(total)

        return Penalty({"ortho": orthogonality})
