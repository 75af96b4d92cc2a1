"""Fooling-ratio curves over ε and DeepFool's ρ_adv.

Fooling ratio at budget ε (the paper's measure): the share of inputs x whose predicted label
changes, k̂(x + η) ≠ k̂(x), with η the attack's perturbation, ‖η‖_p ≤ ε. Attacks are therefore
run against the model's own clean predictions k̂(x). Also reported: the same share over the
correctly classified inputs, robust accuracy (correct and not fooled; for correct inputs
k̂(x) = y) and clean accuracy.

ρ_adv (Moosavi-Dezfooli et al. 2016): mean over inputs of ‖r(x)‖₂ / ‖x‖₂, r the DeepFool
perturbation that changes the label (inputs where DeepFool failed are left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from rankrobust.attacks import apgd, deepfool, fgsm, pgd
from rankrobust.attacks.base import (
    check_epsilons,
    check_norm,
    eval_mode,
    model_device,
    predict,
)
from rankrobust.errors import ConfigError, DataError

Data = tuple[torch.Tensor, torch.Tensor]
ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "deepfool")
COLUMNS = ["attack", "norm", "epsilon", "fooling_ratio", "fooling_ratio_correct",
           "robust_accuracy", "clean_accuracy", "n"]


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
    if attack == "deepfool":
        options = {"norm": norm, **options}
        return deepfool(model, x, labels, **options).success_at(epsilons)
    if attack == "fgsm":
        result = fgsm(model, x, labels, epsilons, norm=norm, **options)
    elif attack == "pgd":
        result = pgd(model, x, labels, epsilons, norm=norm, generator=generator, **options)
    else:
        loss = {"apgd-ce": "ce", "apgd-dlr": "dlr", "apgd-t": "dlr-targeted"}[attack]
        result = apgd(model, x, labels, epsilons, norm=norm, loss=loss, generator=generator,
                      **options)
    return result.success


def fooling_ratio_curve(
    model: nn.Module,
    data: Data,
    attack: str,
    epsilons: float | Sequence[float],
    *,
    norm: str = "inf",
    batch_size: int = 256,
    n: int | None = None,
    seed: int | None = None,
    **attack_options: Any,
) -> pd.DataFrame:
    """Fooling ratio of ``attack`` at each ε over the first ``n`` inputs of ``data``.

    ``data`` = (x (N, C, H, W) in [0, 1], y (N,)); ``attack`` one of fgsm (norm "2": FGM), pgd,
    apgd-ce, apgd-dlr, apgd-t (targeted DLR), deepfool (minimal: success at ε iff ‖r‖ ≤ ε).
    ``attack_options`` go to the attack (steps, restarts, bounds, ...). Returns one row per ε,
    in the given order, with columns attack, norm, epsilon, fooling_ratio,
    fooling_ratio_correct, robust_accuracy, clean_accuracy, n.
    """
    if attack not in ATTACKS:
        raise ConfigError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
    norm = check_norm(norm)
    eps = check_epsilons(epsilons)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    x_all, y_all = select(data, n)
    device = model_device(model)
    gen = make_generator(seed)
    fooled = torch.zeros(len(eps), dtype=torch.long)
    fooled_correct = torch.zeros(len(eps), dtype=torch.long)
    n_correct = 0
    with eval_mode(model):
        for i in range(0, len(x_all), batch_size):
            x = x_all[i : i + batch_size].to(device)
            y = y_all[i : i + batch_size].to(device)
            pred = predict(model, x)
            correct = pred == y
            success = success_matrix(model, x, pred, attack, eps, norm, gen, **attack_options)
            fooled += success.sum(1).cpu()
            fooled_correct += (success & correct[None, :]).sum(1).cpu()
            n_correct += int(correct.sum())
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
    return pd.DataFrame(rows, columns=COLUMNS)


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
