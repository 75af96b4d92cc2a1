"""Callbacks that apply the structure-promoting regularizers of ``rankrobust.regularizers``.

Per step (see ``training.callbacks``): a *subgradient* term enters the loss through ``penalty()``
(ℓ1, product-ℓ1) or is added to ``p.grad`` after backward (nuclear: λ U Vᵀ); a *proximal* step
runs after ``optimizer.step()`` with threshold lr·λ (ℓ1: soft-thresholding; nuclear: singular
value thresholding). With Adam the threshold is not rescaled by Adam's preconditioner: the
proximal step is the SGD proximal-gradient step applied after an Adam step (our choice).

Amortized nuclear term: the decomposition of a weight matrix is recomputed every k steps (k per
matrix, see :func:`auto_svd_every`). In subgradient mode the cached direction is added in
between; for the ``fast`` method it is U diag(min(1, σ/c)) Vᵀ with c = k·lr·λ, the gradient of
the nuclear norm's Moreau envelope (equal to U Vᵀ for every σ ≥ c), so that k steps with a stale
direction cannot drive a small singular value through zero and back (which a stale U Vᵀ does,
and which keeps the effective rank high); ``exact`` adds the plain U Vᵀ. In proximal mode the thresholds of the k steps accumulate, τ = λ Σ lr_t, and one SVT with that τ
runs every k steps (and once more at the end of training, so the final weights are exactly SVT'd).

Logging: ``penalty()`` returns λ·R(W) for every regularizer (detached when the term acts through
a gradient hook or a prox, so it only adds a constant to the loss); for the nuclear norm the value
is the one from the last decomposition. ``on_epoch_end`` adds ``penalty_l1``,
``penalty_nuclear`` or ``penalty_product_l1`` (epoch means) to the epoch's metrics.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.regularizers import (
    WeightRef,
    l1_penalty,
    polar_factor_with_norm,
    product_l1_penalty,
    select_weights,
    singular_value_threshold_with_norm,
    soft_threshold_,
)
from rankrobust.regularizers.nuclear import Method
from rankrobust.regularizers.product import check_chain
from rankrobust.training.callbacks import Callback, TrainState
from rankrobust.training.config import RegularizerConfig

# Auto amortization: the decomposition work of one matrix, spread over its k steps, stays under
# SVD_BUDGET_FLOPS per step (~0.5 ms on 2 CPU cores), and no matrix refreshes more often than
# every SVD_MIN_EVERY[mode] steps (per-call overhead dominates small matrices). The lazy prox
# applies the exact accumulated threshold, so it tolerates a longer period than a stale
# subgradient direction does (LeNet-5/mnist5k: k = 16 keeps proximal within 1.5 % of exact
# effective ranks, subgradient drifts ~6 %; k = 8 keeps it within 3.5 %).
SVD_BUDGET_FLOPS = 2.5e7
SVD_MIN_EVERY = {"proximal": 16, "subgradient": 8}


def decomposition_flops(rows: int, cols: int) -> float:
    """Rough cost of one Gram eigendecomposition step: 2·m·n·r (Gram, products) + 10·r³ (eigh)."""
    r = min(rows, cols)
    return 2.0 * rows * cols * r + 10.0 * r**3


def auto_svd_every(rows: int, cols: int, min_every: int = 8) -> int:
    """k = max(min_every, ⌈flops / SVD_BUDGET_FLOPS⌉): LeNet-5 layers min_every, 1024×1024 516."""
    return max(min_every, math.ceil(decomposition_flops(rows, cols) / SVD_BUDGET_FLOPS))


class _PenaltyLog(Callback):
    """Accumulates the logged penalty per epoch and reports its mean as ``metric``."""

    metric = "penalty"

    def __init__(self) -> None:
        self._sum: torch.Tensor | float = 0.0  # a device tensor once logging starts (no sync)
        self._count = 0

    def _log(self, value: torch.Tensor) -> torch.Tensor:
        self._sum = self._sum + value.detach().double()
        self._count += 1
        return value

    def on_epoch_begin(self, state: TrainState) -> None:
        self._sum, self._count = 0.0, 0

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        metrics[self.metric] = float(self._sum) / max(self._count, 1)


class L1Regularizer(_PenaltyLog):
    """λ Σ‖W‖₁: a loss term (``subgradient``) or soft-thresholding by lr·λ after each step."""

    metric = "penalty_l1"

    def __init__(self, refs: list[WeightRef], lam: float, mode: str = "subgradient") -> None:
        super().__init__()
        self.refs, self.lam, self.mode = refs, float(lam), mode
        self._lr = 0.0

    def penalty(self, state: TrainState) -> torch.Tensor:
        value = self.lam * l1_penalty(r.parameter for r in self.refs)
        return self._log(value if self.mode == "subgradient" else value.detach())

    def on_after_backward(self, state: TrainState) -> None:
        self._lr = state.lr  # the lr of the step about to be taken

    @torch.no_grad()
    def on_after_step(self, state: TrainState) -> None:
        if self.mode == "proximal":
            for ref in self.refs:
                soft_threshold_(ref.parameter, self._lr * self.lam)


class NuclearRegularizer(_PenaltyLog):
    """λ Σ‖W‖_* on the (rows, cols) matrices of ``refs``; see the module docstring.

    ``every``: steps between decompositions (0 = auto: 1 for ``exact``, :func:`auto_svd_every`
    for ``fast``). Refreshes of different matrices are staggered so their cost spreads out.
    """

    metric = "penalty_nuclear"

    def __init__(
        self,
        refs: list[WeightRef],
        lam: float,
        mode: str = "proximal",
        method: Method = "fast",
        every: int = 0,
    ) -> None:
        super().__init__()
        self.refs, self.lam, self.mode, self.method = refs, float(lam), mode, method
        min_every = SVD_MIN_EVERY.get(mode, 8)
        self.every = [
            every if every > 0 else (1 if method == "exact" else auto_svd_every(*r.shape, min_every))
            for r in refs
        ]
        n = len(refs)
        self.offset = [(i * k) // n for i, k in enumerate(self.every)]
        self._polar: list[torch.Tensor | None] = [None] * n
        self._norm: list[float | None] = [None] * n
        self._tau = [0.0] * n
        self._lr = 0.0

    def _smoothing(self, i: int, state: TrainState) -> float:
        """c = k·lr·λ for ``fast`` (0 for ``exact``): k cached steps cannot overshoot zero."""
        return 0.0 if self.method == "exact" else self.every[i] * state.lr * self.lam

    def _due(self, i: int, step: int) -> bool:
        return (step + self.offset[i]) % self.every[i] == 0

    def penalty(self, state: TrainState) -> torch.Tensor:
        for i, ref in enumerate(self.refs):
            if self.mode == "subgradient":
                if self._polar[i] is None or self._due(i, state.step):
                    self._polar[i], self._norm[i] = polar_factor_with_norm(
                        ref.matrix(), self.method, self._smoothing(i, state)
                    )
            elif self._norm[i] is None:  # proximal: the norm before the first prox
                self._norm[i] = polar_factor_with_norm(ref.matrix(), self.method)[1]
        value = self.lam * sum(v or 0.0 for v in self._norm)
        return self._log(torch.tensor(value, device=state.device))

    @torch.no_grad()
    def on_after_backward(self, state: TrainState) -> None:
        self._lr = state.lr
        if self.mode != "subgradient":
            return
        for ref, q in zip(self.refs, self._polar, strict=True):
            assert q is not None
            p = ref.parameter
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.add_(q.view_as(p), alpha=self.lam)

    @torch.no_grad()
    def _prox(self, i: int) -> None:
        ref = self.refs[i]
        new, self._norm[i] = singular_value_threshold_with_norm(
            ref.matrix(), self._tau[i], self.method
        )
        ref.parameter.copy_(new.view_as(ref.parameter))
        self._tau[i] = 0.0

    def on_after_step(self, state: TrainState) -> None:
        if self.mode != "proximal":
            return
        for i in range(len(self.refs)):
            self._tau[i] += self._lr * self.lam
            if self._due(i, state.step):  # state.step = steps taken, this one included
                self._prox(i)

    def on_train_end(self, state: TrainState) -> None:
        if self.mode == "proximal":
            for i in range(len(self.refs)):
                if self._tau[i] > 0:
                    self._prox(i)


class ProductL1Regularizer(_PenaltyLog):
    """λ‖W_L ⋯ W_1‖₁ over a chain of Linear weights (one reading of the paper's "joint" term)."""

    metric = "penalty_product_l1"

    def __init__(self, refs: list[WeightRef], lam: float) -> None:
        super().__init__()
        if any(not isinstance(r.module, nn.Linear) for r in refs):
            raise ConfigError("regularizer 'product-l1' needs fully connected layers only (--model mlp)")
        check_chain([r.shape for r in refs])
        self.refs, self.lam = refs, float(lam)

    def penalty(self, state: TrainState) -> torch.Tensor:
        return self._log(self.lam * product_l1_penalty([r.parameter for r in self.refs]))


def regularizer_callbacks(model: nn.Module, config: RegularizerConfig) -> list[Callback]:
    """The callbacks for ``config.kind`` on the weights that ``config.layers`` selects.

    ``l1+nuclear`` runs the nuclear term first, then ℓ1 (so with two proximal steps, the
    soft-threshold's exact zeros are what each step leaves).
    """
    config.validate()
    if config.kind == "none":
        return []
    refs = select_weights(model, config.layers)
    callbacks: list[Callback] = []
    if config.kind in ("nuclear", "l1+nuclear"):
        callbacks.append(
            NuclearRegularizer(
                refs, config.lambda_nuclear, config.nuclear_mode, config.nuclear_method,
                config.svd_every,
            )
        )
    if config.kind in ("l1", "l1+nuclear"):
        callbacks.append(L1Regularizer(refs, config.lambda_l1, config.l1_mode))
    if config.kind == "product-l1":
        callbacks.append(ProductL1Regularizer(refs, config.lambda_l1))
    return callbacks
