"""Single-budget perturbation primitives shared by the attacks and by adversarial training.

Each function takes ``model`` (any mode: it is *not* switched, so adversarial training can
attack the network in train mode), inputs ``x`` (B, C, H, W) within ``bounds``, labels ``y``
(B,), and a budget ``eps`` (a float, or a (B,) tensor of per-sample budgets), and returns the
adversarial inputs, detached, inside the ε-ball of the chosen norm and inside ``bounds``.
Parameter gradients are left untouched (only ∇ₓ is computed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Bounds = tuple[float, float]


def _as_batch(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Budget as a (B, 1, ..., 1) tensor broadcastable against x."""
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.ndim == 0:
        e = e.expand(x.shape[0])
    return e.view(-1, *([1] * (x.ndim - 1)))


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ Σᵢ CE(model(xᵢ), yᵢ): per-sample loss gradients (the sum keeps them unscaled by B)."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def flat_norm(v: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ‖vᵢ‖ over all non-batch dims, shape (B,); norm "inf" or "2"."""
    flat = v.flatten(1)
    return flat.abs().amax(1) if norm == "inf" else flat.norm(p=2, dim=1)


def steepest_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """argmax over ‖d‖ ≤ 1 of ⟨grad, d⟩: sign(g) for ℓ∞, g / ‖g‖₂ for ℓ2 (0 where g = 0)."""
    if norm == "inf":
        return grad.sign()
    n = flat_norm(grad, "2").clamp_min(1e-12)
    return grad / n.view(-1, *([1] * (grad.ndim - 1)))


def project(delta: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Euclidean projection onto the ε-ball of ``norm`` (eps shaped (B, 1, ..., 1))."""
    if norm == "inf":
        return torch.maximum(torch.minimum(delta, eps), -eps)
    n = flat_norm(delta, "2").view(-1, *([1] * (delta.ndim - 1)))
    factor = torch.clamp(eps / n.clamp_min(1e-12), max=1.0)
    return delta * factor


def fgsm_perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    norm: str = "inf",
    bounds: Bounds = (0.0, 1.0),
) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015; norm "inf") / FGM (norm "2"): x + ε·d(∇ₓL), clipped."""
    e = _as_batch(eps, x)
    d = steepest_direction(input_gradient(model, x, y), norm)
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
) -> torch.Tensor:
    """PGD (Madry et al. 2018): ``steps`` ascent steps of size α along d(∇ₓL), each followed by
    projection onto the ε-ball and the bounds; random start uniform in the ℓ∞ ball (or a uniform
    direction and radius in the ℓ2 ball). Default α = 2.5·ε/steps.
    """
    e = _as_batch(eps, x)
    alpha = 2.5 * e / steps if step_size is None else _as_batch(step_size, x)
    x = x.detach()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device="cpu", dtype=x.dtype).to(x.device)
        if norm == "inf":
            delta = (2 * noise - 1) * e
        else:
            g = torch.randn(x.shape, generator=generator, device="cpu", dtype=x.dtype).to(x.device)
            g = g / flat_norm(g, "2").clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
            r = noise.flatten(1)[:, :1].view(-1, *([1] * (x.ndim - 1)))
            delta = g * e * r
    else:
        delta = torch.zeros_like(x)
    x_adv = (x + delta).clamp(*bounds)
    for _ in range(steps):
        d = steepest_direction(input_gradient(model, x_adv, y), norm)
        delta = project(x_adv + alpha * d - x, e, norm)
        x_adv = (x + delta).clamp(*bounds).detach()
    return x_adv
