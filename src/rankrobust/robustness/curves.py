"""Fooling-ratio curves over ε and DeepFool's ρ_adv.

Fooling ratio at budget ε (the paper's measure): the share of inputs x whose predicted label
changes, k̂(x + η) ≠ k̂(x), with η the attack's perturbation, ‖η‖_p ≤ ε. Attacks are therefore
run against the model's own clean predictions k̂(x). Also reported: the same share over the
correctly classified inputs, robust accuracy (correct and not fooled; for correct inputs
k̂(x) = y) and clean accuracy.

Per input, :func:`robustness_curve` also gives ε_min, the smallest budget of the curve at which
the input is not robust: 0 for an input misclassified without perturbation, NaN for one robust
at every budget (for an attack that nests its budgets, as every built-in one does
(``Attack.nests``), the curve's robust accuracy at ε_k is the share of inputs with ε_min > ε_k
or NaN; autoattack with ``bisect`` refines ε_min between grid budgets). Memory does not grow with the number of budgets K beyond (K, batch) booleans:
results are reduced per batch as they are made and no (K, N, C, H, W) adversarial examples are
kept.

ρ_adv (Moosavi-Dezfooli et al. 2016): mean over inputs of ‖r(x)‖₂ / ‖x‖₂, r the DeepFool
perturbation that changes the label (inputs where DeepFool failed are left out).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rankrobust.attacks import EnsembleResult, deepfool, get_attack
from rankrobust.attacks.base import (
    check_epsilons,
    check_labels,
    check_norm,
    eval_mode,
    model_device,
    output_classes,
    predict,
)
from rankrobust.attacks.grid import first_success
from rankrobust.errors import ConfigError, DataError

Data = tuple[torch.Tensor, torch.Tensor]
COLUMNS = ["attack", "norm", "epsilon", "fooling_ratio", "fooling_ratio_correct",
           "robust_accuracy", "clean_accuracy", "n"]
ENSEMBLE_COLUMNS = [*COLUMNS, "broken_by"]  # autoattack: + JSON {member: inputs it broke}


def select(data: Data, n: int | None) -> Data:
    """The first ``n`` inputs of ``data`` = (x (N, ...), y (N,)), checked."""
    x, y = data
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"expected x (N, ...) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if n is not None:
        if n < 1:
            raise ConfigError(f"n must be positive, got {n}")
        x, y = x[:n], y[:n]
    if len(x) == 0:
        raise DataError("no inputs to attack")
    return x, y


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or from torch's global RNG when None (so that
    ``torch.manual_seed`` before the call fixes the random starts)."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator().manual_seed(seed)


def attack_batch(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    attack: str,
    epsilons: list[float],
    norm: str,
    generator: torch.Generator,
    **options: Any,
) -> tuple[torch.Tensor, EnsembleResult | None]:
    """(K, B) success of the registered ``attack`` at each ε on one batch (on the model's
    device), and for an ensemble its :class:`EnsembleResult` (which member broke which input,
    ``eps_min``). No adversarial examples are kept."""
    result = get_attack(attack).run(model, x, labels, epsilons, norm, generator, **options)
    return result.success, result if isinstance(result, EnsembleResult) else None


def success_matrix(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    attack: str,
    epsilons: list[float],
    norm: str,
    generator: torch.Generator,
    **options: Any,
) -> torch.Tensor:
    """(K, B) success of ``attack`` at each ε on one batch (on the model's device)."""
    return attack_batch(model, x, labels, attack, epsilons, norm, generator, **options)[0]


@dataclass(frozen=True)
class Curve:
    """A robustness curve: ``frame`` (one row per ε, :func:`fooling_ratio_curve`'s columns) and
    ``eps_min`` (N,) float64, per attacked input in data order, the smallest budget at which it
    is not robust (0: misclassified unperturbed; NaN: robust at every budget)."""

    frame: pd.DataFrame
    eps_min: np.ndarray


def fooling_ratio_curve(
    model: nn.Module, data: Data, attack: str, epsilons: float | Sequence[float], **options: Any
) -> pd.DataFrame:
    """Fooling ratio of ``attack`` at each ε over the first ``n`` inputs of ``data``; ``options``
    are :func:`robustness_curve`'s keywords (norm="inf", batch_size=256, n=None: all, seed=None:
    from torch's RNG, progress=None) and the attack's options.

    ``data`` = (x (N, C, H, W) in [0, 1], y (N,)); ``attack`` a registered attack
    (:data:`rankrobust.attacks.ATTACKS`: fgsm (norm "2": FGM), pgd, apgd-ce, apgd-dlr, apgd-t
    (targeted DLR), square (gradient-free), autoattack (the ensemble APGD-CE → APGD-T → Square;
    ``grid=True``: the ε-grid schedule), deepfool (minimal: success at ε iff ‖r‖ ≤ ε), or one a
    plug-in registered). The attack's options go to it (steps, restarts, n_queries,
    bounds, grid, bisect, ...; an option it does not take is refused). Returns one row per ε,
    in the given order, with columns attack, norm, epsilon, fooling_ratio,
    fooling_ratio_correct, robust_accuracy, clean_accuracy, n; for an ensemble (autoattack)
    also ``broken_by``, a JSON object {member: count} on the true labels: "clean" =
    inputs misclassified unperturbed, then per member the correctly classified inputs it broke
    (no earlier member did), so that the counts sum to n·(1 − robust_accuracy).

    Attacks run against the model's clean predictions (the fooling ratio); robust accuracy is
    on the true labels: an input counts as robust at ε iff it is correctly classified and not
    fooled, so a misclassified input is never robust. ``progress`` hears the number of inputs
    done after each batch (e.g. :meth:`rankrobust.progress.Progress.update`).
    :func:`robustness_curve` also returns each input's minimal budget.
    """
    return robustness_curve(model, data, attack, epsilons, **options).frame


def robustness_curve(
    model: nn.Module,
    data: Data,
    attack: str,
    epsilons: float | Sequence[float],
    *,
    norm: str = "inf",
    batch_size: int = 256,
    n: int | None = None,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
    **attack_options: Any,
) -> Curve:
    """:func:`fooling_ratio_curve`'s frame plus every input's ε_min (:class:`Curve`)."""
    entry = get_attack(attack)
    norm = check_norm(norm)
    entry.check_norm(norm)
    entry.check_options(attack_options)
    eps = check_epsilons(epsilons)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    x_all, y_all = select(data, n)
    if y_all.is_floating_point() or y_all.is_complex() or y_all.dtype == torch.bool:
        raise DataError(f"labels must be integers, got dtype {y_all.dtype}")
    check_labels(y_all, output_classes(model, x_all))  # true labels: only compared, never attacked
    device = model_device(model)
    gen = make_generator(seed)
    fooled = torch.zeros(len(eps), dtype=torch.long)
    fooled_correct = torch.zeros(len(eps), dtype=torch.long)
    broken: dict[str, torch.Tensor] = {}  # autoattack: member → (K,) correct inputs it broke
    eps_min: list[torch.Tensor] = []  # per batch (B,) float64
    n_correct = 0
    with eval_mode(model):
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size].to(device)
            y = y_all[i : i + batch_size].to(device)
            pred = predict(model, x)
            correct = pred == y
            success, ens = attack_batch(model, x, pred, attack, eps, norm, gen, **attack_options)
            fooled += success.sum(1).cpu()
            fooled_correct += (success & correct[None, :]).sum(1).cpu()
            n_correct += int(correct.sum())
            found = ens.eps_min if ens is not None and ens.eps_min is not None \
                else first_success(success, eps)
            eps_min.append(torch.where(correct, found, 0.0).cpu())
            if ens is not None:
                broken["clean"] = broken.get("clean", 0) + (~correct).sum().cpu().expand(len(eps))
                for m, name in enumerate(ens.names[1:], start=1):
                    count = ((ens.broken_by == m) & correct[None, :]).sum(1).cpu()
                    broken[name] = broken.get(name, 0) + count
            if progress is not None:
                progress(len(x))
    total = len(x_all)
    rows = []
    for k, e in enumerate(eps):
        rows.append({
            "attack": attack, "norm": norm, "epsilon": e,
            "fooling_ratio": fooled[k].item() / total,
            "fooling_ratio_correct": fooled_correct[k].item() / n_correct if n_correct else float("nan"),
            "robust_accuracy": (n_correct - fooled_correct[k].item()) / total,
            "clean_accuracy": n_correct / total, "n": total,
        })
        if broken:
            rows[-1]["broken_by"] = json.dumps({m: int(c[k]) for m, c in broken.items()})
    frame = pd.DataFrame(rows, columns=ENSEMBLE_COLUMNS if broken else COLUMNS)
    return Curve(frame, torch.cat(eps_min).double().numpy())


def rho_adv(
    model: nn.Module,
    data: Data,
    *,
    batch_size: int = 256,
    n: int | None = None,
    **deepfool_options: Any,
) -> float:
    """DeepFool's ρ_adv = mean ‖r(x)‖₂ / ‖x‖₂ over the inputs whose label DeepFool changed.

    Returns nan when DeepFool changed no label. Options (overshoot, max_iter, norm, bounds) go
    to :func:`rankrobust.attacks.deepfool`; the ratio always uses the ℓ2 norm of r.
    """
    x_all, _ = select(data, n)
    device = model_device(model)
    ratios = []
    with eval_mode(model):
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size].to(device)
            res = deepfool(model, x, predict(model, x), **deepfool_options)
            ratio = res.norms_in("2") / x.flatten(1).norm(dim=1).clamp_min(1e-12)
            ratios.append(ratio[res.success].cpu())
    found = torch.cat(ratios)
    return float(found.double().mean()) if len(found) else float("nan")
