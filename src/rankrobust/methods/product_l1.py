"""``product-l1``: λ₁‖W_L ⋯ W_1‖₁ over a chain of Linear weights.

One reading of the paper's "joint" regularizer (its exact form is not known to us): the ℓ1 norm
of the end-to-end linear map of a fully connected network. A loss term (subgradient) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.methods.base import Penalty, StepInfo, TrainingMethod, positive, register
from rankrobust.regularizers import product_l1_penalty, select_weights
from rankrobust.regularizers.product import check_chain


@register
@dataclass(frozen=True)
class ProductL1(TrainingMethod):
    """λ₁‖W_L ⋯ W_1‖₁ over the selected Linear weights (fully connected models only)."""

    name = "product-l1"
    label = "product-ℓ1"
    color = "#8c6d31"
    kind = "regularized"
    description = "ℓ1 norm of the product of the Linear weights, λ₁·‖W_L⋯W_1‖₁"
    swept = ("lambda_l1",)

    lambda_l1: float = 1e-3
    layers: str = "all"

    def __post_init__(self) -> None:
        positive(self.lambda_l1, "lambda_l1")

    def regularize(self, model: nn.Module) -> Penalty:
        refs = select_weights(model, self.layers)
        if any(not isinstance(r.module, nn.Linear) for r in refs):
            raise ConfigError("method 'product-l1' needs fully connected layers only (--model mlp)")
        check_chain([r.shape for r in refs])
        lam = float(self.lambda_l1)

        def term(info: StepInfo) -> torch.Tensor:
            return lam * product_l1_penalty([r.parameter for r in refs])

        return Penalty({"product_l1": term})
