"""``spectral-norm``: every selected weight reparametrized as W = σ·W̃/σ₁(W̃) (Miyato et al., ICLR 2018).

A Lipschitz control: each layer's spectral norm is held at ``sigma``, so the network's ℓ2
Lipschitz constant is at most σ^depth times the input normalization's 1/std. Implemented with
PyTorch's :func:`torch.nn.utils.parametrizations.spectral_norm` (σ₁ estimated by one power
iteration per training forward, the estimate frozen in eval mode), followed by a constant scale
σ. One power iteration per step lags the last update a little (σ₁ of the effective weight came
out up to 8 % above σ after 2 epochs), so a final step runs ``FINAL_ITERATIONS`` more iterations
on the trained weights: the effective weight's σ₁ is then σ within 1 % (tested). A conv kernel
(out, in, kh, kw) is normalized as the matrix (out, in·kh·kw), the same matrix
``rankrobust.structure`` measures.

Why the parametrization and not a Parseval retraction (Cisse et al. 2017,
W ← (1 + β)W − β·W WᵀW after each step): the parametrization holds the constraint at every
forward (up to the power iteration's estimate), with gradients taken through the normalization,
and has one setting (σ); the retraction only pulls W towards a tight frame at a rate β that
interacts with the learning rate and needs its own sweep, and it constrains every singular
value (near 1), not only the largest, so it would also impose a structure (a flat spectrum,
maximal effective rank) on a control meant to bound the Lipschitz constant only.

After training, ``fit`` bakes the parametrization into plain weights (the effective W, from the
frozen power-iteration vectors), so checkpoints load into the plain architecture and the
structure analysis, attacks and interventions see the weight the network computes with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize as P
from torch.nn.utils.parametrizations import _SpectralNorm, spectral_norm

from rankrobust.configuration import require
from rankrobust.methods.base import Penalty, TrainingMethod, positive, register
from rankrobust.regularizers import select_weights

FINAL_ITERATIONS = 50


class Scale(nn.Module):
    """Parametrization W ↦ c·W (after spectral normalization: σ₁ = c)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.factor

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / self.factor


@register
@dataclass(frozen=True)
class SpectralNorm(TrainingMethod):
    """Each selected weight trained as sigma·W/σ₁(W) (PyTorch's spectral_norm parametrization)."""

    name = "spectral-norm"
    label = "spectral norm"
    color = "#35978f"
    kind = "parametrized"
    description = "spectral normalization W = σ·W/σ₁(W) per layer (Miyato et al. 2018), a Lipschitz control"

    sigma: float = 1.0  # the spectral norm each selected layer is held at
    power_iterations: int = 1  # per training forward
    layers: str = "all"
    param_name = "weight"  # class attribute: the parametrized tensor of each module

    def __post_init__(self) -> None:
        positive(self.sigma, "sigma")
        require(self.power_iterations >= 1,
                f"power_iterations must be ≥ 1, got {self.power_iterations}")

    def parametrize(self, model: nn.Module) -> None:
        for ref in select_weights(model, self.layers):
            spectral_norm(ref.module, self.param_name, n_power_iterations=self.power_iterations)
            if self.sigma != 1.0:
                P.register_parametrization(ref.module, self.param_name, Scale(self.sigma))

    def regularize(self, model: nn.Module) -> Penalty:
        modules = [m for m in model.modules() if P.is_parametrized(m, self.param_name)
                   and any(isinstance(p, _SpectralNorm)
                           for p in getattr(m.parametrizations, self.param_name))]

        @torch.no_grad()
        def converge() -> None:  # a training-mode access runs one power iteration
            for module in modules:
                was = module.training
                module.train()
                for _ in range(FINAL_ITERATIONS):
                    getattr(module, self.param_name)
                module.train(was)

        return Penalty(final_steps=[converge])
