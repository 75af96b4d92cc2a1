"""``weight-decay``: the ℓ2 penalty λ Σ_W ‖W‖²_F on the selected weights, a structure-blind control.

The term λ·Σ‖W‖²_F is added to the loss (gradient 2λW). It shrinks every weight alike and
promotes neither sparsity nor low rank, so it answers whether ℓ1+nuclear's robustness gain comes
from *structure* or from any regularizer that costs the same clean accuracy. It is a loss term,
not the optimizer's ``weight_decay`` (which under Adam is a rescaled, different penalty), and it
acts on the same weights as ``l1`` and ``nuclear`` (``layers``; biases are left alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rankrobust.methods.base import Penalty, StepInfo, TrainingMethod, positive, register
from rankrobust.regularizers import select_weights


@register
@dataclass(frozen=True)
class WeightDecay(TrainingMethod):
    """λ Σ‖W‖²_F on the weights that ``layers`` selects ("all" or a regex on module paths)."""

    name = "weight-decay"
    label = "weight decay"
    color = "#878787"
    kind = "regularized"
    description = "ℓ2 penalty λ·Σ‖W‖²_F (weight decay as a loss term), a structure-blind control"
    swept = ("lambda_wd",)

    lambda_wd: float = 1e-4
    layers: str = "all"

    def __post_init__(self) -> None:
        positive(self.lambda_wd, "lambda_wd")

    def regularize(self, model: nn.Module) -> Penalty:
        weights = [ref.parameter for ref in select_weights(model, self.layers)]
        lam = float(self.lambda_wd)

        def l2(info: StepInfo) -> torch.Tensor:
            return lam * torch.stack([w.pow(2).sum() for w in weights]).sum()

        return Penalty({"l2": l2})
