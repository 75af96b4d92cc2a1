"""Shared pieces of the attacks: argument checks, ε lists, shapes, mode restore, batched
prediction and result types (the bottom layer of the package: it imports no other attack module).

Conventions for every attack in this package:

* ``model`` maps inputs x (N, C, H, W) (any shape (N, ...)) within ``bounds`` to logits (N, K);
  it is put in eval mode for the attack and every submodule's mode is restored afterwards;
* inputs and labels are moved to the model's device; results stay there;
* ``success[k, i]`` means ``argmax model(x_adv[k, i]) != y[i]``. Pass the model's own clean
  predictions as ``y`` to measure the *fooling ratio* (label change, the paper's measure), or
  the true labels to measure misclassification;
* fixed-budget attacks take a **list** of budgets ε and return an :class:`AttackResult` (K, N);
  minimal attacks return a :class:`MinimalResult` from which any ε curve follows.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from rankrobust.errors import ConfigError

Bounds = tuple[float, float]
_NORM_ALIASES = {"inf": "inf", "linf": "inf", "l_inf": "inf", "2": "2", "l2": "2"}


def check_norm(norm: str | float) -> str:
    """Canonical norm name, "inf" or "2" (accepts "linf", "l2", math.inf, 2)."""
    key = "inf" if norm == math.inf else str(norm).strip().lower().removesuffix(".0")
    if key not in _NORM_ALIASES:
        raise ConfigError(f"unknown norm {norm!r}; expected 'inf' or '2'")
    return _NORM_ALIASES[key]


def check_epsilons(epsilons: float | Sequence[float]) -> list[float]:
    """Budgets as a non-empty list of finite, non-negative floats (order kept)."""
    values = [float(epsilons)] if isinstance(epsilons, int | float) else [float(e) for e in epsilons]
    if not values:
        raise ConfigError("epsilons: expected at least one budget")
    bad = [e for e in values if not math.isfinite(e) or e < 0]
    if bad:
        raise ConfigError(f"epsilons must be finite and non-negative, got {bad[0]}")
    return values


def check_bounds(bounds: Bounds) -> Bounds:
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ConfigError(f"bounds must satisfy low < high, got {bounds}")
    return lo, hi


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameterless model)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def prepare(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: Bounds
) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y on the model's device, detached, in the model's floating dtype; checked.

    Refused with one line (ConfigError): wrong shapes, non-finite inputs or inputs outside
    ``bounds`` (an attack's ε would be meaningless: raw 0–255 pixels fool "at ε = 0"), labels
    that are not integers or lie outside [0, K) for the model's K outputs (:func:`check_labels`;
    K from one forward of a single input, :func:`output_classes`), and models with non-finite
    parameters (which would otherwise look "perfectly robust") or with nothing to differentiate.
    """
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ConfigError(f"expected x (N, ...) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    check_bounds(bounds)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ConfigError(f"labels must be integers, got dtype {y.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ConfigError("inputs contain NaN or infinite values")
    if x.numel() and (float(x.min()) < bounds[0] or float(x.max()) > bounds[1]):
        raise ConfigError(f"inputs lie outside the declared bounds {tuple(bounds)} "
                          f"(found [{float(x.min()):g}, {float(x.max()):g}]; scale pixels to [0, 1])")
    params = [p for p in model.parameters() if p.is_floating_point()]
    if not params:
        raise ConfigError("the model has no floating-point parameters: nothing to attack")
    for name, p in model.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ConfigError(f"the model's parameter {name!r} has NaN or infinite values")
    device = model_device(model)
    dtype = params[0].dtype
    x, y = x.detach().to(device=device, dtype=dtype), y.detach().to(device=device, dtype=torch.long)
    if len(y):
        check_labels(y, output_classes(model, x))
    return x, y


def output_classes(model: nn.Module, x: torch.Tensor) -> int:
    """K, the number of logits ``model`` gives per input: one forward of x[:1] (moved to the
    model's device and floating dtype), without a graph, in eval mode (modes restored).

    ConfigError unless the model maps x (1, ...) to finite logits (1, K) with K ≥ 1.
    """
    params = [p for p in model.parameters() if p.is_floating_point()]
    dtype = params[0].dtype if params else x.dtype
    with torch.no_grad(), eval_mode(model):
        out = model(x[:1].to(device=model_device(model), dtype=dtype))
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != min(len(x), 1) or out.shape[1] < 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model must map inputs (N, ...) to logits (N, K), got {got} "
                          f"for N = {min(len(x), 1)}")
    if out.numel() and not bool(torch.isfinite(out).all()):  # e.g. finite but huge weights
        raise ConfigError("the model gives NaN or infinite logits: its predictions mean nothing")
    return int(out.shape[1])


def check_labels(y: torch.Tensor, classes: int) -> None:
    """ConfigError (one line, naming the label and K) unless every label y (N,) lies in
    [0, ``classes``): a label ≥ K never equals a prediction, so it would count as "fooled" or
    "misclassified" (a silently wrong ratio), and cross-entropy would fail or ignore it (−100).
    Two reductions over y, no loop over samples."""
    if not y.numel():
        return
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise ConfigError(f"label {bad} is out of range for a model with K = {classes} outputs "
                          f"(labels must lie in 0..{classes - 1})")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; restore each one's own mode on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def default_generator(generator: torch.Generator | None) -> torch.Generator:
    """The given CPU generator, or a fresh one seeded with 0 (determinism by default)."""
    return generator if generator is not None else torch.Generator().manual_seed(0)


def broadcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) → (B, 1, ..., 1) so that it broadcasts against ``like`` (B, ...)."""
    return v.view(-1, *([1] * (like.ndim - 1)))


def per_sample(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A budget or step size, scalar or (B,), as a (B, 1, ..., 1) tensor in ``like``'s dtype and
    device, broadcastable against ``like`` (B, ...)."""
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if v.ndim == 0:
        v = v.expand(like.shape[0])
    return broadcast(v, like)


def flat_norm(v: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ‖vᵢ‖ over all non-batch dims, shape (B,); norm "inf" or "2"."""
    flat = v.flatten(1)
    return flat.abs().amax(1) if norm == "inf" else flat.norm(p=2, dim=1)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels argmaxₖ model(x)ₖ, (N,) long, on the model's device.

    x (N, ...) may live on any device; it is moved batch by batch (``batch_size`` inputs per
    forward, no graph built). The model runs in eval mode and every submodule's own mode is
    restored afterwards.
    """
    device = model_device(model)
    with eval_mode(model):
        out = [model(x[i : i + batch_size].to(device)).argmax(1)
               for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=device)


@dataclass(repr=False)
class AttackResult:
    """Outcome of a fixed-budget attack at K budgets on N inputs.

    ``epsilons`` (K,) as given; ``success`` (K, N) bool; ``x_adv`` (K, N, ...) with
    ‖x_adv[k] − x‖_norm ≤ ε_k and x_adv within the bounds, or None when the attack was called
    with ``keep_adv=False`` (then its memory does not grow with K beyond the (K, N) booleans).
    """

    epsilons: list[float]
    norm: str
    success: torch.Tensor
    x_adv: torch.Tensor | None

    def success_rate(self) -> torch.Tensor:
        """Share of successful inputs per budget, (K,)."""
        return self.success.float().mean(1)

    def __repr__(self) -> str:
        """A summary, never the tensors: norm, budgets, N, success rate per budget, x_adv's shape."""
        rates = self.success_rate().tolist() if self.success.numel() else []
        return (f"{type(self).__name__}(norm={self.norm!r}, epsilons={_short(self.epsilons)}, "
                f"n={self.success.shape[-1]}, success_rate={_short(rates)}, "
                f"x_adv={_shape(self.x_adv)})")


@dataclass(repr=False)
class MinimalResult:
    """Outcome of a minimal-perturbation attack on N inputs.

    ``x_adv`` (N, ...), ``perturbation`` = x_adv − x, ``norms`` (N,) = ‖perturbation‖_norm,
    ``success`` (N,) bool, ``iterations`` (N,) linearization steps used.
    """

    norm: str
    x_adv: torch.Tensor
    perturbation: torch.Tensor
    norms: torch.Tensor
    success: torch.Tensor
    iterations: torch.Tensor

    def success_at(self, epsilons: float | Sequence[float]) -> torch.Tensor:
        """(K, N) bool: the found perturbation succeeds and fits in the ε_k ball."""
        eps = torch.tensor(check_epsilons(epsilons), dtype=self.norms.dtype, device=self.norms.device)
        return self.success[None, :] & (self.norms[None, :] <= eps[:, None])

    def norms_in(self, norm: str) -> torch.Tensor:
        """‖perturbation‖ in another norm ("inf" or "2"), (N,)."""
        return flat_norm(self.perturbation, check_norm(norm))

    def __repr__(self) -> str:
        """A summary, never the tensors: norm, N, success rate, median norm of the successes."""
        n = int(self.success.numel())
        found = self.norms[self.success]
        median = f"{float(found.median()):.4g}" if found.numel() else "nan"
        rate = f"{float(self.success.float().mean()):.4g}" if n else "nan"
        return (f"MinimalResult(norm={self.norm!r}, n={n}, success_rate={rate}, "
                f"median_norm={median}, x_adv={_shape(self.x_adv)})")


def _short(values: Sequence[float], limit: int = 6) -> str:
    """'[0.1, 0.2, … (+4)]': at most ``limit`` values, 4 significant digits."""
    shown = ", ".join(f"{v:.4g}" for v in list(values)[:limit])
    more = f", … (+{len(values) - limit})" if len(values) > limit else ""
    return f"[{shown}{more}]"


def _shape(t: torch.Tensor | None) -> str:
    if t is None:
        return "None"
    return f"<{'×'.join(map(str, t.shape))} {str(t.dtype).removeprefix('torch.')}>"


# One budget on a subset: (x (M, ...), y (M,), eps, rows (M,) indices into the full batch)
# → (x_adv (M, ...), success (M,)).
SingleBudget = Callable[
    [torch.Tensor, torch.Tensor, float, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]


def ascending_budgets(
    x: torch.Tensor, y: torch.Tensor, epsilons: list[float], norm: str, attack_one: SingleBudget,
    keep_adv: bool = True,
) -> AttackResult:
    """Run ``attack_one`` for each ε in ascending order, only on inputs not yet fooled.

    An input fooled at ε_j is fooled at every ε_k ≥ ε_j by the same adversarial example (it lies
    in the larger ball), so it costs no further work: success[k] = OR over ε_j ≤ ε_k.
    """
    return ensemble_budgets(x, y, epsilons, norm, [attack_one], keep_adv)[0]


def budgets_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: float | Sequence[float],
    norm: str,
    bounds: Bounds,
    single: Callable[[torch.Tensor, torch.Tensor, str], SingleBudget],
    keep_adv: bool = True,
) -> AttackResult:
    """The template of a fixed-budget attack at K budgets: norm and budgets checked, x and y
    prepared (:func:`prepare`), then, in eval mode, :func:`ascending_budgets` over
    ``single(x, y, norm)``, the attack at one budget on the prepared inputs."""
    norm = check_norm(norm)
    eps_list = check_epsilons(epsilons)
    x, y = prepare(model, x, y, bounds)
    with eval_mode(model):
        return ascending_budgets(x, y, eps_list, norm, single(x, y, norm), keep_adv)


def ensemble_budgets(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilons: list[float],
    norm: str,
    members: Sequence[SingleBudget],
    keep_adv: bool = True,
) -> tuple[AttackResult, torch.Tensor]:
    """Budgets in ascending order; at each, the ``members`` in turn, each only on the inputs
    that no earlier member (and no smaller budget) has fooled.

    Returns the AttackResult and ``broken_by`` (K, N) long: the index of the member that fooled
    input i at budget ε_k, either at ε_k or at the smallest ε_j < ε_k where it was fooled (its
    example is reused, it lies in the larger ball); −1 where no member fooled it. An input never
    fooled keeps, as x_adv[k], the last member's output. With one member this is
    :func:`ascending_budgets`. With ``keep_adv=False`` no (K, N, ...) tensor is made and the
    result's ``x_adv`` is None: memory is O(N·D + K·N) whatever the number of budgets K.
    """
    n, k_count = x.shape[0], len(epsilons)
    success = torch.zeros(k_count, n, dtype=torch.bool, device=x.device)
    broken_by = torch.full((k_count, n), -1, dtype=torch.long, device=x.device)
    x_adv = x.expand(k_count, *x.shape).clone() if keep_adv else None  # (K, N, ...)
    fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
    by = torch.full((n,), -1, dtype=torch.long, device=x.device)
    found = x.clone() if keep_adv else x
    for k in sorted(range(k_count), key=lambda i: epsilons[i]):
        before = fooled.clone()
        todo = (~fooled).nonzero().squeeze(1)
        for m, attack_one in enumerate(members):
            if not len(todo):
                break
            xa, hit = attack_one(x[todo], y[todo], epsilons[k], todo)
            if x_adv is not None:
                x_adv[k, todo] = xa
            new = todo[hit]
            fooled[new], by[new] = True, m
            if x_adv is not None:
                found[new] = xa[hit]
            todo = todo[~hit]
        if x_adv is not None:
            x_adv[k, before] = found[before]  # fooled at a smaller budget: reuse that example
        success[k], broken_by[k] = fooled, by
    return AttackResult(list(epsilons), norm, success, x_adv), broken_by


def budget_generator(base: int, eps: float, *keys: int) -> torch.Generator:
    """A CPU generator seeded from (``base``, ``eps``, ``keys``) alone.

    Attacks draw their randomness for one budget (and, e.g., one restart) from it, for all N
    inputs of the call at once and then index the inputs they run on: an input's random draws,
    hence its result, do not depend on which other inputs or budgets run with it. That is what
    makes an ensemble that runs a member only on survivors at least as strong as the member
    alone with the same seed.
    """
    digest = hashlib.blake2b(struct.pack(f"<qd{len(keys)}q", base, eps, *keys), digest_size=8)
    return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)


def base_seed(generator: torch.Generator | None) -> int:
    """One draw from ``generator`` (None: seed 0), the base of :func:`budget_generator`."""
    return int(torch.randint(0, 2**62, (1,), generator=default_generator(generator)).item())
