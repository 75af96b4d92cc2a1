"""Stacked hooks: the methods whose runs train together as one stacked model, K runs per step.

``rankrobust.training.stacked`` holds K runs' weights as tensors (K, *shape). A method stacks
when its hooks act on each run separately and elementwise or per matrix; then the K runs' hooks
are computed at once, with per-run parameters (λ) broadcast over the run axis:

* objective: natural (mean CE per run) and ``pgd-adv``; both return per-run losses (K,) whose
  sum has, for run k's weights, exactly run k's solo gradient;
* ``l1``: λ_k Σ‖W_k‖₁ (subgradient, gradient λ_k sign W_k added to the block's ``.grad`` after
  the backward pass) or the soft-threshold W ← sign W · max(|W| − lr·λ_k, 0);
* ``weight-decay``: λ_k Σ‖W_k‖²_F, gradient 2λ_k W_k added to the block's ``.grad``;
* ``nuclear`` (and ``l1+nuclear``, nuclear first): the solo schedule of
  :func:`rankrobust.methods.nuclear.nuclear_penalty_hooks` — matrix i decomposed when
  (step + offset_i) mod k_i = 0, accumulated thresholds τ_k = λ_k Σ lr_t — with one batched
  decomposition of the runs' (S, m, n) stack per refresh (Gram ``eigh`` for ``fast``,
  ``torch.linalg.svd`` for ``exact``), singular values masked per run instead of sliced.

Runs of one *block* (:func:`stack_key`: same method and non-swept parameters) are contiguous in
the stack, so a block's weights are views P[a:b] of the stacked parameters (:class:`StackedRef`).
Methods with other hooks (trades, fgsm-adv, fgsm-rs, lowrank, spectral-norm, product-l1) and any
method not named here return None and train solo.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.base import per_sample
from rankrobust.attacks.perturb import pgd_run, random_in_ball
from rankrobust.methods.base import StepInfo, TrainingMethod, warmup_eps
from rankrobust.methods.l1 import L1
from rankrobust.methods.l1_nuclear import L1Nuclear
from rankrobust.methods.natural import Natural
from rankrobust.methods.nuclear import SVD_MIN_EVERY, Nuclear, auto_svd_every
from rankrobust.methods.pgd_adv import SEED_OFFSET, PGDAdv
from rankrobust.methods.weight_decay import WeightDecay
from rankrobust.structure.spectrum import FLOAT64_MAX_SIDE, gram_eigh


@dataclass(frozen=True)
class StackedRef:
    """One regularized weight of the runs [start, stop) of a stack: P[start:stop], (S, out, ...)."""

    path: str
    stacked: nn.Parameter  # (K, out, ...)
    start: int
    stop: int

    def block(self) -> torch.Tensor:
        """The block's weights (S, out, ...), a view of the stacked parameter."""
        return self.stacked[self.start : self.stop]

    def matrices(self) -> torch.Tensor:
        """(S, rows, cols): each run's weight as a matrix, (out, in) or (out, in·kh·kw); a view."""
        return self.block().reshape(self.stop - self.start, self.stacked.shape[1], -1)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.stacked.shape[1]), int(self.stacked[0].numel() // self.stacked.shape[1])


StackedTerm = Callable[[StepInfo], torch.Tensor]  # info → per-run values (S,), detached


@dataclass
class StackedPenalty:
    """A block's :class:`~rankrobust.methods.Penalty`: loss terms valued per run (S,), detached.

    A differentiable term's gradient is added by its ``grad_steps`` entry, right after the
    backward pass, to the block's slice of ``.grad``: the gradient solo autograd gives
    (λ sign W for ℓ1, λ Q for the nuclear term), without autograd's zero-filled full-stack
    gradient of a slice (one (K, *shape) memset per block and step).
    """

    loss_terms: dict[str, StackedTerm] = field(default_factory=dict)
    grad_steps: list[Callable[[], None]] = field(default_factory=list)
    prox_steps: list[Callable[[int, float], None]] = field(default_factory=list)
    final_steps: list[Callable[[], None]] = field(default_factory=list)

    def __add__(self, other: StackedPenalty) -> StackedPenalty:
        return StackedPenalty({**self.loss_terms, **other.loss_terms},
                              [*self.grad_steps, *other.grad_steps],
                              [*self.prox_steps, *other.prox_steps],
                              [*self.final_steps, *other.final_steps])


@torch.no_grad()
def add_gradient(ref: StackedRef, gradient: torch.Tensor) -> None:
    """``ref``'s block of ``.grad`` += ``gradient`` (S, out, ...)."""
    if ref.stacked.grad is None:
        ref.stacked.grad = torch.zeros_like(ref.stacked)
    ref.stacked.grad[ref.start : ref.stop] += gradient


class StackedObjective(Protocol):
    """(stacked model, x (B, K·C, H, W) or shared (B, C, H, W), y (B, K), info) →
    (per-run losses (K,), logits (B, K, classes))."""

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def _default_hooks(method: TrainingMethod) -> bool:
    return type(method).parametrize is TrainingMethod.parametrize


def objective_key(method: TrainingMethod) -> Hashable | None:
    """Runs with equal keys share one stacked objective; None: the objective does not stack."""
    if not _default_hooks(method):
        return None
    if type(method).objective is TrainingMethod.objective:
        return ("cross-entropy",)
    if isinstance(method, PGDAdv):
        return (PGDAdv.name, method)
    return None


def shares_inputs(key: Hashable) -> bool:
    """Whether runs of this objective may see one input batch when their data order is one."""
    return key == ("cross-entropy",)


def stack_key(method: TrainingMethod) -> Hashable | None:
    """Runs with equal keys form one penalty block (per-run λ); None: the penalty does not stack."""
    if objective_key(method) is None:
        return None
    if isinstance(method, L1):
        return (L1.name, method.l1_mode, method.layers)
    if isinstance(method, Nuclear):
        return (Nuclear.name, method.nuclear_mode, method.nuclear_method, method.svd_every,
                method.layers)
    if isinstance(method, L1Nuclear):
        return (L1Nuclear.name, method.l1_mode, method.nuclear_mode, method.nuclear_method,
                method.svd_every, method.layers)
    if isinstance(method, WeightDecay):
        return (WeightDecay.name, method.layers)
    if isinstance(method, (Natural, PGDAdv)):
        return ("none",)
    return None


# -- objectives -----------------------------------------------------------------------------
def cross_entropy_per_run(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(K,) mean CE of each run: logits (B, K·classes), labels y (B, K)."""
    b, k = y.shape
    flat = F.cross_entropy(logits.reshape(b * k, -1), y.reshape(-1), reduction="none")
    return flat.view(b, k).mean(0)


def cross_entropy_total(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ over runs and samples of CE: the PGD ascent loss (each input gets its own gradient)."""
    return F.cross_entropy(logits.reshape(y.numel(), -1), y.reshape(-1), reduction="sum")


def natural_stacked(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
) -> tuple[torch.Tensor, torch.Tensor]:
    """Natural training of K runs: per-run mean CE on their clean batches."""
    logits = model(x)  # (B, K·classes)
    return cross_entropy_per_run(logits, y), logits.view(*y.shape, -1)


def pgd_stacked(method: PGDAdv, seeds: Sequence[int]) -> StackedObjective:
    """PGD adversarial training of K runs (see ``methods.pgd_adv``), one PGD loop for all.

    Run k's random starts come from its own generator seeded seed_k + 7919 and are drawn with
    its batch's shape (B, C, H, W), exactly as solo; the ascent treats the (B, K·C, H, W) batch
    as B inputs whose K slices are scored by their own run (the sign step is elementwise).
    """
    generators = [torch.Generator().manual_seed(s + SEED_OFFSET) for s in seeds]
    eps0, steps, step_size0 = method.eps, method.steps, method.step_size

    def loss(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: StepInfo
    ) -> tuple[torch.Tensor, torch.Tensor]:
        eps = warmup_eps(eps0, method.warmup_epochs, info.progress)
        if eps > 0:
            e = per_sample(eps, x)  # (B, 1, 1, 1)
            alpha = 2.5 * e / steps if step_size0 is None else per_sample(
                step_size0 * eps / eps0, x)
            runs = x.view(x.shape[0], len(generators), -1, *x.shape[2:])  # (B, K, C, H, W)
            start = (torch.stack([random_in_ball(runs[:, k], e, "inf", g)
                                  for k, g in enumerate(generators)], 1).view_as(x)
                     if method.random_start else torch.zeros_like(x))
            x = pgd_run(model, x, y, e, "inf", steps, alpha, start,
                        loss_fn=cross_entropy_total).x_adv
        return natural_stacked(model, x, y, info)

    return loss


def stacked_objective(methods: Sequence[TrainingMethod], seeds: Sequence[int]) -> StackedObjective:
    """The objective of K runs with one :func:`objective_key` (ValueError otherwise)."""
    keys = {objective_key(m) for m in methods}
    if len(keys) != 1 or None in keys:
        raise ValueError(f"objectives do not stack: {sorted(m.name for m in methods)}")
    first = methods[0]
    return pgd_stacked(first, seeds) if isinstance(first, PGDAdv) else natural_stacked


# -- penalties ------------------------------------------------------------------------------
def l1_stacked(refs: list[StackedRef], lam: torch.Tensor, mode: str) -> StackedPenalty:
    """λ_k Σ‖W_k‖₁ per run (S,), ``lam`` (S,) float64; proximal: soft-threshold by lr·λ_k."""
    lam32 = lam.float()

    @torch.no_grad()
    def term(info: StepInfo) -> torch.Tensor:
        total = torch.stack([r.block().abs().flatten(1).sum(1) for r in refs]).sum(0)  # (S,)
        return total * lam32.to(total.device)

    def gradient() -> None:  # ∂/∂W_s λ_s‖W_s‖₁ = λ_s sign(W_s)
        for ref in refs:
            w = ref.block()
            add_gradient(ref, torch.sign(w) * lam32.to(w.device).view(-1, *[1] * (w.ndim - 1)))

    @torch.no_grad()
    def prox(step: int, lr: float) -> None:
        tau = (lr * lam).float()  # (S,)
        for ref in refs:
            w = ref.block()
            t = tau.to(w.device).view(-1, *[1] * (w.ndim - 1))
            w.copy_(torch.sign(w) * torch.clamp(w.abs() - t, min=0))

    if mode == "subgradient":
        return StackedPenalty({"l1": term}, [gradient])
    return StackedPenalty({"l1": term}, prox_steps=[prox])


def l2_stacked(refs: list[StackedRef], lam: torch.Tensor) -> StackedPenalty:
    """λ_k Σ‖W_k‖²_F per run (S,), ``lam`` (S,) float64; its gradient 2λ_k W_k."""
    lam32 = lam.float()

    @torch.no_grad()
    def term(info: StepInfo) -> torch.Tensor:
        total = torch.stack([r.block().square().flatten(1).sum(1) for r in refs]).sum(0)  # (S,)
        return total * lam32.to(total.device)

    def gradient() -> None:
        for ref in refs:
            w = ref.block().detach()
            add_gradient(ref, 2 * w * lam32.to(w.device).view(-1, *[1] * (w.ndim - 1)))

    return StackedPenalty({"l2": term}, [gradient])


def _oriented(result: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(S, l, k) computed on the tall orientation → ``like``'s (S, m, n) and dtype."""
    if like.shape[-2] < like.shape[-1]:
        result = result.mT
    return result.to(like.dtype).contiguous()


def batched_svt(matrices: torch.Tensor, tau: torch.Tensor, method: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(SVT_{τ_s}(W_s) (S, m, n), Σ max(σ − τ_s, 0) (S,) float64) for W (S, m, n), τ (S,).

    SVT_τ(W) = U diag(max(σ − τ, 0)) Vᵀ; ``fast`` = W V diag((1 − τ/σ)₊) Vᵀ from G = WᵀW.
    """
    if method == "exact":
        u, s, vh = torch.linalg.svd(matrices.detach(), full_matrices=False)
        shrunk = (s - tau.to(s)[:, None]).clamp_min(0)  # (S, r)
        return ((u * shrunk[:, None]) @ vh).to(matrices.dtype), shrunk.double().sum(-1)
    w, sigma, v = gram_eigh(matrices, vectors=True, float64_max_side=FLOAT64_MAX_SIDE)
    t = tau.to(sigma)[:, None]  # (S, 1)
    keep = sigma > t  # a prefix of each run's descending σ
    r = int(keep.sum(-1).max())  # thin products over the largest kept count
    factor = torch.where(keep, 1 - t / sigma, torch.zeros_like(sigma))[:, :r]  # (S, r)
    vr = v[..., :r]  # (S, k, r)
    out = ((w @ vr) * factor[:, None]) @ vr.mT
    return _oriented(out, matrices), torch.where(keep, sigma - t, 0).double().sum(-1)


def batched_polar(matrices: torch.Tensor, method: str, smoothing: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(U diag(min(1, σ/c_s)) Vᵀ (S, m, n), ‖W_s‖_* (S,) float64), as ``polar_factor_with_norm``.

    ``fast`` keeps, per run, the σ above the numerical-rank cutoff 10·σ₁·√(rows·ε).
    """
    c = None if smoothing is None else smoothing[:, None]
    if method == "exact":
        u, s, vh = torch.linalg.svd(matrices.detach(), full_matrices=False)
        if c is not None and bool((c > 0).any()):
            u = u * (s / s.clamp_min(c.to(s)))[:, None]
        return u @ vh, s.double().sum(-1)
    w, sigma, v = gram_eigh(matrices, vectors=True, float64_max_side=FLOAT64_MAX_SIDE)
    eps = torch.finfo(sigma.dtype).eps
    cutoff = sigma[:, :1].clamp_min(torch.finfo(sigma.dtype).tiny) * 10 * (w.shape[-2] * eps) ** 0.5
    keep = sigma > cutoff  # a prefix of each run's descending σ
    r = int(keep.sum(-1).max())
    denom = (sigma if c is None else sigma.clamp_min(c.to(sigma)))[:, :r]
    vr = v[..., :r]  # (S, k, r)
    scaled = torch.where(keep[:, None, :r], (w @ vr) / denom[:, None], 0)  # (S, l, r)
    return _oriented(scaled @ vr.mT, matrices), sigma.double().sum(-1)


def nuclear_stacked(refs: list[StackedRef], lam: torch.Tensor, mode: str, method: str,
                    svd_every: int) -> StackedPenalty:
    """The solo nuclear hooks' schedule and state, each cached value with a run axis (S, ...)."""
    n = len(refs)
    min_every = SVD_MIN_EVERY.get(mode, 8)
    every = [svd_every if svd_every > 0 else (1 if method == "exact" else auto_svd_every(
        *r.shape, min_every)) for r in refs]
    offset = [(i * k) // n for i, k in enumerate(every)]
    polar: list[torch.Tensor | None] = [None] * n  # (S, m, n)
    norms: list[torch.Tensor | None] = [None] * n  # (S,) float64
    tau = [torch.zeros_like(lam) for _ in refs]  # (S,) float64

    def due(i: int, step: int) -> bool:
        return (step + offset[i]) % every[i] == 0

    @torch.no_grad()
    def subgradient_term(info: StepInfo) -> torch.Tensor:
        total: torch.Tensor | None = None
        for i, ref in enumerate(refs):
            if polar[i] is None or due(i, info.step):
                smoothing = None if method == "exact" else every[i] * info.lr * lam
                polar[i], norms[i] = batched_polar(ref.matrices(), method, smoothing)
            q = polar[i]
            assert q is not None
            inner = (ref.matrices() * q).sum((1, 2))  # ⟨W_s, stopgrad(Q_s)⟩ (S,)
            total = inner if total is None else total + inner
        assert total is not None
        return total * lam.to(total)

    def gradient() -> None:  # ∂/∂W_s λ_s⟨W_s, Q_s⟩ = λ_s Q_s, the cached direction
        for ref, q in zip(refs, polar, strict=True):
            assert q is not None
            scale = lam.to(q).view(-1, 1, 1)
            add_gradient(ref, (q * scale).view_as(ref.block()))

    def logged_term(info: StepInfo) -> torch.Tensor:
        for i, ref in enumerate(refs):
            if norms[i] is None:  # the norm before the first prox
                norms[i] = batched_polar(ref.matrices(), method)[1]
        total = sum((v for v in norms if v is not None), torch.zeros_like(lam))
        return (lam * total).float().to(refs[0].stacked.device)

    @torch.no_grad()
    def svt(i: int) -> None:
        ref = refs[i]
        new, norms[i] = batched_svt(ref.matrices(), tau[i], method)
        ref.block().copy_(new.view_as(ref.block()))
        tau[i] = torch.zeros_like(lam)

    def prox(step: int, lr: float) -> None:
        for i in range(n):
            tau[i] = tau[i] + lr * lam
            if due(i, step):
                svt(i)

    def final() -> None:
        for i in range(n):
            if bool((tau[i] > 0).any()):
                svt(i)

    if mode == "subgradient":
        return StackedPenalty({"nuclear": subgradient_term}, [gradient])
    return StackedPenalty({"nuclear": logged_term}, prox_steps=[prox], final_steps=[final])


def stacked_penalty(
    methods: Sequence[TrainingMethod], select: Callable[[str], list[StackedRef]]
) -> StackedPenalty:
    """The penalty of one block: runs with one :func:`stack_key`, each with its own λ.

    ``select(layers)`` gives the block's :class:`StackedRef` for a method's ``layers`` pattern.
    """
    keys = {stack_key(m) for m in methods}
    if len(keys) != 1 or None in keys:
        raise ValueError(f"penalties do not stack: {sorted(m.name for m in methods)}")
    first = methods[0]

    def lam(name: str) -> torch.Tensor:
        return torch.tensor([float(getattr(m, name)) for m in methods], dtype=torch.float64)

    if isinstance(first, L1):
        return l1_stacked(select(first.layers), lam("lambda_l1"), first.l1_mode)
    if isinstance(first, WeightDecay):
        return l2_stacked(select(first.layers), lam("lambda_wd"))
    if isinstance(first, Nuclear):
        return nuclear_stacked(select(first.layers), lam("lambda_nuclear"), first.nuclear_mode,
                               first.nuclear_method, first.svd_every)
    if isinstance(first, L1Nuclear):
        refs = select(first.layers)
        return (nuclear_stacked(refs, lam("lambda_nuclear"), first.nuclear_mode,
                                first.nuclear_method, first.svd_every)
                + l1_stacked(refs, lam("lambda_l1"), first.l1_mode))
    return StackedPenalty()
