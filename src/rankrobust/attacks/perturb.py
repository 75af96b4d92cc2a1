"""Single-budget primitives shared by adversarial training and the evaluation attacks.

One random start (:func:`random_in_ball`), one gradient (:func:`loss_gradient`) and one PGD loop
(:func:`pgd_run`): ``pgd_perturb`` (training) and :func:`rankrobust.attacks.pgd` (evaluation)
both run it; ``fgsm_perturb`` is the one-step case without projection.

Conventions: ``model`` maps x (B, C, H, W) (any shape (B, ...)) within ``bounds`` to logits
(B, K) and is *not* switched to eval mode (adversarial training attacks the network as it is
trained); ``eps`` is a float or a (B,) tensor of per-sample budgets; results are detached, in the
ε-ball of the norm ("inf" or "2") around x and in ``bounds``. Only ∇ₓ is computed: parameter
gradients are left untouched.

The loss ascended is ``loss_fn(logits_adv (B, K), target) -> scalar``, the **sum** over the batch
of per-sample losses, so that ∇ₓ of sample i is its own loss's gradient, unscaled by B. Default:
Σᵢ CE(logits_advᵢ, yᵢ) with ``target`` = labels y (B,). ``target`` is passed through untouched,
e.g. clean probabilities p(x) (B, K) for TRADES' Σᵢ KL(p(xᵢ) ‖ p(x′ᵢ)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.attacks.base import Bounds, broadcast, flat_norm, per_sample

# (logits_adv (B, K), target) -> Σᵢ per-sample loss, a scalar tensor to ascend
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "Bounds",
    "LossFn",
    "PGDRun",
    "cross_entropy_sum",
    "fgsm_perturb",
    "flat_norm",
    "input_gradient",
    "loss_gradient",
    "pgd_perturb",
    "pgd_run",
    "project",
    "random_in_ball",
    "steepest_direction",
]


def cross_entropy_sum(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Σᵢ CE(logitsᵢ, targetᵢ) = Σᵢ −log softmax(logitsᵢ)[targetᵢ]; logits (B, K), target (B,)."""
    return F.cross_entropy(logits, target, reduction="sum")


def loss_gradient(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss_fn: LossFn | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(∇ₓ loss_fn(model(x), target) (B, ...), the logits of that forward (B, K), detached).

    One forward and one backward, graph built even under ``torch.no_grad``; default loss
    :func:`cross_entropy_sum`.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        (grad,) = torch.autograd.grad((loss_fn or cross_entropy_sum)(logits, target), xg)
    return grad, logits.detach()


def input_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None = None
) -> torch.Tensor:
    """∇ₓ Σᵢ Lᵢ (B, ...), by default Lᵢ = CE(model(xᵢ), yᵢ): per-sample loss gradients."""
    return loss_gradient(model, x, y, loss_fn)[0]


def steepest_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """argmax over ‖d‖ ≤ 1 of ⟨grad, d⟩: sign(g) for ℓ∞, g / ‖g‖₂ for ℓ2 (0 where g = 0)."""
    if norm == "inf":
        return grad.sign()
    return grad / broadcast(flat_norm(grad, "2").clamp_min(1e-12), grad)


def project(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Euclidean projection onto the ε-ball of ``norm`` (eps shaped (B, 1, ..., 1)):
    clamp(δ, −ε, ε) for ℓ∞, δ·min(1, ε/‖δ‖₂) for ℓ2."""
    if norm == "inf":
        return torch.maximum(torch.minimum(delta, eps), -eps)
    factor = torch.clamp(eps / broadcast(flat_norm(delta, "2").clamp_min(1e-12), delta), max=1.0)
    return delta * factor


def random_in_ball(
    x: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    generator: torch.Generator | None = None,
    full_radius: bool = False,
) -> torch.Tensor:
    """A random δ in the ε-ball of ``norm`` (same shape and device as x (B, ...)).

    ℓ∞: δ = ε·(2u − 1), u ~ U[0, 1)^shape: uniform in the ball. ℓ2: δ = ε·r·g/‖g‖₂ with
    g ~ N(0, I) (a uniform direction) and r = uᵢ's first entry ~ U[0, 1) (r = 1 with
    ``full_radius``: on the sphere). ``eps`` is a float or a (B,) tensor.

    Draws, in this order: u (x.shape), then for ℓ2 g (x.shape), both on the CPU in x's dtype from
    ``generator`` (None: torch's global RNG), so that a seed gives the same δ on every device.
    """
    e = per_sample(eps, x)
    u = torch.rand(x.shape, generator=generator, device="cpu", dtype=x.dtype)
    if norm == "inf":
        return (2 * u - 1).to(x.device) * e
    g = torch.randn(x.shape, generator=generator, device="cpu", dtype=x.dtype)
    g = g / broadcast(flat_norm(g, "2").clamp_min(1e-12), g)
    r = u.flatten(1)[:, :1]  # (B, 1)
    if full_radius:
        r = torch.ones_like(r)
    return g.to(x.device) * e * broadcast(r.to(x.device), x)


def _pgd_step_(
    xa: torch.Tensor,
    grad: torch.Tensor,
    x: torch.Tensor,
    eps: torch.Tensor,
    alpha: float | torch.Tensor,
    norm: str,
    bounds: Bounds,
    buf: torch.Tensor,
) -> torch.Tensor:
    """x_{t+1} = clip(x + Π_ε(x_t + α·d(g) − x)) written over the iterate ``xa`` (returned).

    The operations of ``(x + project(xa + alpha * steepest_direction(grad, norm) - x, eps,
    norm)).clamp(*bounds)``, in that order, hence the same bits, but in place: d(g) goes to
    ``buf`` (shaped like xa, never read before written; ``grad`` is not written), δ and the new
    iterate to ``xa``. No allocation of the iterate's size, no host sync.
    """
    if norm == "inf":
        torch.sign(grad, out=buf)
    else:
        torch.div(grad, broadcast(flat_norm(grad, "2").clamp_min(1e-12), grad), out=buf)
    buf.mul_(alpha)  # α·d
    xa.add_(buf).sub_(x)  # δ = (x_t + α·d) − x
    if norm == "inf":  # Π_ε: clamp(δ, −ε, ε) as project() does it
        torch.minimum(xa, eps, out=xa)
        torch.maximum(xa, -eps, out=xa)
    else:  # Π_ε: δ·min(1, ε/‖δ‖₂)
        xa.mul_(torch.clamp(eps / broadcast(flat_norm(xa, "2").clamp_min(1e-12), xa), max=1.0))
    return xa.add_(x).clamp_(*bounds)


@dataclass
class PGDRun:
    """Outcome of :func:`pgd_run` on B inputs.

    ``x_adv`` (B, ...): the last iterate, or with ``track`` the first iterate that fooled the
    model (``fooled`` (B,) bool) and for the others the highest-loss iterate, whose per-sample
    cross-entropy is ``loss`` (B,) (+inf where fooled). ``fooled`` and ``loss`` are None
    without ``track``.
    """

    x_adv: torch.Tensor
    fooled: torch.Tensor | None = None
    loss: torch.Tensor | None = None


def pgd_run(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str,
    steps: int,
    alpha: float | torch.Tensor,
    start: torch.Tensor,
    bounds: Bounds = (0.0, 1.0),
    loss_fn: LossFn | None = None,
    track: bool = False,
    early_stop: bool = True,
) -> PGDRun:
    """The PGD loop (Madry et al. 2018), one budget: from x₀ = clip(x + start),

        x_{t+1} = clip(x + Π_ε(x_t + α·d(∇ₓ loss_fn(model(x_t), target)) − x)),  t < ``steps``,

    d = sign (ℓ∞) or g/‖g‖₂ (ℓ2), Π_ε the projection onto the ε-ball, clip to ``bounds``.
    ``eps`` and ``alpha`` are floats or (B,) tensors; ``start`` (B, ...) a δ in the ball.

    Without ``track`` (training): exactly ``steps`` forward+backward passes, the last iterate
    returned. With ``track`` (evaluation; ``target`` must be labels y (B,)): each iterate's
    prediction and per-sample CE(model(x_t), y) are recorded, one more forward scores the last
    iterate, and the run keeps per input the first iterate with argmax ≠ y, else the
    highest-loss one; with ``early_stop`` an input stops costing work once fooled.

    Per step, besides the forward and backward: the step is made in place on the iterate
    (:func:`_pgd_step_`, same bits as the formula above) with one scratch buffer for the whole
    run; tracking copies only the rows that improved (``index_copy_``).
    """
    e = per_sample(eps, x)  # (B, 1, ..., 1)
    a = per_sample(alpha, x) if isinstance(alpha, torch.Tensor) else alpha
    x = x.detach()
    b = x.shape[0]
    best_x = x.clone() if track else x
    best_loss = torch.full((b,), -torch.inf, dtype=x.dtype, device=x.device)
    fooled = torch.zeros(b, dtype=torch.bool, device=x.device)
    rows = torch.arange(b, device=x.device)  # the inputs still running
    xs, ts, es, al = x, target, e, a
    xa = (x + start).clamp(*bounds)  # a fresh tensor: the loop owns it and steps it in place
    buf = torch.empty_like(xa)  # the step direction α·d, rows [0, len(rows))
    for t in range(steps + 1):
        last = t == steps
        if last and not track:
            break
        if last:
            with torch.no_grad():
                logits = model(xa)
        else:
            grad, logits = loss_gradient(model, xa, ts, loss_fn)
        with torch.no_grad():
            if track:
                loss = F.cross_entropy(logits, ts, reduction="none")
                hit = logits.argmax(1) != ts
                better = loss > best_loss[rows]
                if not early_stop:  # fooled inputs keep running, but keep their first fooling iterate
                    live = ~fooled[rows]
                    hit &= live
                    better &= live
                improved = (hit | better).nonzero().squeeze(1)
                best_x.index_copy_(0, rows[improved], xa.index_select(0, improved))
                best_loss[rows[better]] = loss[better]
                fooled[rows[hit]] = True
                best_loss[rows[hit]] = torch.inf
                if last:
                    break
            xa = _pgd_step_(xa, grad, xs, es, al, norm, bounds, buf[: len(rows)])
            if track and early_stop:
                keep = ~fooled[rows]
                if not keep.all():
                    rows, xa, xs, ts, es = rows[keep], xa[keep], xs[keep], ts[keep], es[keep]
                    al = al[keep] if isinstance(al, torch.Tensor) else al
                if not len(rows):
                    break
    if not track:
        return PGDRun(xa)
    return PGDRun(best_x, fooled, best_loss)


def fgsm_perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str = "inf",
    bounds: Bounds = (0.0, 1.0),
    loss_fn: LossFn | None = None,
) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015; norm "inf") / FGM (norm "2"): clip(x + ε·d(∇ₓL)), d as in
    :func:`steepest_direction`, L = ``loss_fn(model(x), y)`` (default Σᵢ CE at labels y).
    Returns x_adv (B, ...), detached; one forward and one backward."""
    e = per_sample(eps, x)
    d = steepest_direction(input_gradient(model, x, y, loss_fn), norm)
    return (x + e * d).clamp(*bounds).detach()


def pgd_perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str = "inf",
    steps: int = 10,
    step_size: float | torch.Tensor | None = None,
    random_start: bool = True,
    bounds: Bounds = (0.0, 1.0),
    generator: torch.Generator | None = None,
    loss_fn: LossFn | None = None,
) -> torch.Tensor:
    """PGD (Madry et al. 2018) for training: the last of ``steps`` iterates of :func:`pgd_run`.

    Ascends L(x′) = ``loss_fn(model(x′), y)``, a scalar Σᵢ ℓ(model(x′ᵢ), yᵢ) over the batch:
    default ℓ = CE with labels y (B,) long; ``y`` reaches ``loss_fn`` as is, e.g. clean
    probabilities p(x) (B, K) with ℓ = KL(p(xᵢ) ‖ softmax(model(x′ᵢ))) for TRADES. Steps of size
    α (default 2.5·ε/steps), each projected onto the ε-ball and the bounds, from a random start
    in the ball (:func:`random_in_ball`, drawn from ``generator``) or from x. Returns x_adv
    (B, ...), detached; exactly ``steps`` forward+backward passes, in the model's own mode.
    """
    e = per_sample(eps, x)
    alpha = 2.5 * e / steps if step_size is None else per_sample(step_size, x)
    start = random_in_ball(x, e, norm, generator) if random_start else torch.zeros_like(x)
    return pgd_run(model, x, y, e, norm, steps, alpha, start, bounds, loss_fn).x_adv
