"""``l1+nuclear``: the paper's combined regularizer λ_* Σ‖W‖_* + λ₁ Σ‖W‖₁ on the same weights.

The nuclear term runs first, then ℓ1 (so with two proximal steps, the soft-threshold's exact
zeros are what each step leaves). See ``methods.nuclear`` and ``methods.l1`` for both terms.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from rankrobust.methods.base import Penalty, TrainingMethod, positive, register
from rankrobust.methods.l1 import Mode as L1Mode
from rankrobust.methods.l1 import l1_penalty_hooks
from rankrobust.methods.nuclear import Decomposition, check_nuclear, nuclear_penalty_hooks
from rankrobust.methods.nuclear import Mode as NuclearMode
from rankrobust.regularizers import select_weights


@register
@dataclass(frozen=True)
class L1Nuclear(TrainingMethod):
    """λ_* Σ‖W‖_* + λ₁ Σ‖W‖₁: low rank and sparsity promoted together."""

    name = "l1+nuclear"
    label = "ℓ1+nuclear"
    color = "#762a83"
    kind = "regularized"
    description = "ℓ1 + nuclear-norm penalty λ₁·Σ‖W‖₁ + λ_*·Σ‖W‖_* (the paper's combination)"
    swept = ("lambda_nuclear", "lambda_l1")

    lambda_l1: float = 1e-4
    lambda_nuclear: float = 1.0
    l1_mode: L1Mode = "subgradient"
    nuclear_mode: NuclearMode = "proximal"
    nuclear_method: Decomposition = "fast"
    svd_every: int = 0
    layers: str = "all"

    def __post_init__(self) -> None:
        positive(self.lambda_l1, "lambda_l1")
        check_nuclear(self.lambda_nuclear, self.svd_every)

    def regularize(self, model: nn.Module) -> Penalty:
        refs = select_weights(model, self.layers)
        nuclear = nuclear_penalty_hooks(refs, float(self.lambda_nuclear), self.nuclear_mode,
                                        self.nuclear_method, self.svd_every)
        return nuclear + l1_penalty_hooks(refs, float(self.lambda_l1), self.l1_mode)
