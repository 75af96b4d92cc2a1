"""``l1``: sparsity-promoting penalty λ₁ Σ_W ‖W‖₁ over the selected weights (the paper's ℓ1).

``l1_mode="subgradient"``: the term λ₁‖W‖₁ is added to the loss (autograd gives λ₁ sign W).
``l1_mode="proximal"``: after each optimizer step, soft-thresholding W ← sign W · max(|W| − lr·λ₁, 0)
with the lr of that step; the term is then only logged (detached). With Adam the threshold is
not rescaled by Adam's preconditioner: the SGD proximal step applied after an Adam step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from rankrobust.configuration import require
from rankrobust.methods.base import (
    Penalty,
    StepInfo,
    TrainingMethod,
    positive,
    register,
)
from rankrobust.regularizers import WeightRef, l1_penalty, select_weights, soft_threshold_

Mode = Literal["subgradient", "proximal"]


def l1_penalty_hooks(refs: list[WeightRef], lam: float, mode: Mode) -> Penalty:
    """Term λ Σ‖W‖₁ (detached in proximal mode) and, in proximal mode, soft-thresholding."""

    def term(info: StepInfo) -> torch.Tensor:
        value = lam * l1_penalty(r.parameter for r in refs)
        return value if mode == "subgradient" else value.detach()

    @torch.no_grad()
    def prox(step: int, lr: float) -> None:  # soft-threshold by the lr·λ of this step
        for ref in refs:
            soft_threshold_(ref.parameter, lr * lam)

    return Penalty({"l1": term}, [prox] if mode == "proximal" else [])


@register
@dataclass(frozen=True)
class L1(TrainingMethod):
    """λ₁ Σ‖W‖₁ on the weights that ``layers`` selects ("all" or a regex on module paths)."""

    name = "l1"
    label = "ℓ1"
    color = "#2166ac"
    kind = "regularized"
    description = "ℓ1 penalty λ₁·Σ‖W‖₁ (subgradient or soft-thresholding)"
    swept = ("lambda_l1",)

    lambda_l1: float = 1e-3
    l1_mode: Mode = "subgradient"
    layers: str = "all"

    def __post_init__(self) -> None:
        positive(self.lambda_l1, "lambda_l1")
        require(self.l1_mode in ("subgradient", "proximal"), f"l1_mode: {self.l1_mode!r}")

    def regularize(self, model: nn.Module) -> Penalty:
        return l1_penalty_hooks(select_weights(model, self.layers), float(self.lambda_l1), self.l1_mode)
