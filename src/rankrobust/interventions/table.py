"""``intervention_table``: accuracy, robustness and structure of a model after each intervention.

For each keep level (and, with ``per_layer``, each Linear/Conv layer on its own) the model is
intervened on (:mod:`.registry`; no retraining) and the copy is measured on the first ``n``
inputs of ``data``:

* clean accuracy, robust accuracy and fooling ratio under ``attack`` at budget ε
  (:func:`rankrobust.robustness.fooling_ratio_curve`, attacking the model's own predictions);
* ρ_adv = mean ‖r(x)‖₂ / ‖x‖₂ of DeepFool's ℓ2 perturbations (:func:`rankrobust.robustness.rho_adv`);
* structure (:func:`rankrobust.structure.analyze`, no data): the means over layers of the effective
  rank D₁(σ/Σσ), effective sparsity D₁(|w|/Σ|w|), their normalized variants (÷ min(m, n), ÷ m·n)
  and the numerical rank, and the density #{w ≠ 0} / #{w} over all weight matrices; with
  ``per_layer``, those of the row's layer alone (the layer intervened on).

Every row uses the same attack seed (common random numbers), so rows differ only by the
intervention, and keep = 1 (an exact copy) reproduces the numbers of the unmodified model.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from rankrobust.attacks import get_attack
from rankrobust.attacks.base import check_epsilons, check_norm
from rankrobust.configuration import closest
from rankrobust.errors import ConfigError
from rankrobust.interventions.base import check_keeps, select_layers
from rankrobust.interventions.registry import get_intervention
from rankrobust.progress import Progress
from rankrobust.robustness import fooling_ratio_curve, rho_adv
from rankrobust.structure import analyze, layer_matrices

Data = tuple[torch.Tensor, torch.Tensor]
ALL_LAYERS = "all"
MEASURES: tuple[str, ...] = (
    "clean_accuracy", "robust_accuracy", "fooling_ratio", "rho_adv", "effective_rank",
    "effective_sparsity", "normalized_effective_rank", "normalized_effective_sparsity",
    "numerical_rank", "density",
)
COLUMNS: tuple[str, ...] = ("intervention", "layer", "keep", *MEASURES, "attack", "norm", "epsilon", "n")


def structure_summary(model: nn.Module, layer: str | None = None) -> dict[str, float]:
    """Means over layers of :func:`analyze`'s effective rank/sparsity (raw and normalized) and
    numerical rank, and the density #{w ≠ 0} / #{w} over all weight matrices; with ``layer`` (a
    path of :func:`select_layers`), those of that layer alone."""
    frame = analyze(model)
    matrices = layer_matrices(model)
    if layer is not None:
        frame = frame[frame["layer"] == layer]
        matrices = OrderedDict((k, v) for k, v in matrices.items() if k == layer)
        if frame.empty:
            raise ConfigError(f"unknown layer {layer!r}{closest(layer, list(layer_matrices(model)))}")
    nonzero = total = 0
    for w in matrices.values():
        nonzero += int(torch.count_nonzero(w))
        total += w.numel()
    summary = {c: float(frame[c].mean()) for c in (
        "effective_rank", "effective_sparsity", "normalized_effective_rank",
        "normalized_effective_sparsity", "numerical_rank")}
    summary["density"] = nonzero / total if total else math.nan
    return summary


def measure(
    model: nn.Module,
    data: Data,
    *,
    attack: str,
    eps: float,
    norm: str = "inf",
    n: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    deepfool: bool = True,
    layer: str | None = None,
    **attack_options: Any,
) -> dict[str, float]:
    """The :data:`MEASURES` of ``model`` (see the module docstring); ρ_adv is nan without
    ``deepfool``; structure of ``layer`` alone when given. The model is not modified."""
    return {**robustness_measures(model, data, attack=attack, eps=eps, norm=norm, n=n,
                                  batch_size=batch_size, seed=seed, deepfool=deepfool, **attack_options),
            **structure_summary(model, layer)}


def robustness_measures(
    model: nn.Module,
    data: Data,
    *,
    attack: str,
    eps: float,
    norm: str = "inf",
    n: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    deepfool: bool = True,
    **attack_options: Any,
) -> dict[str, float]:
    """Clean and robust accuracy, fooling ratio and ρ_adv (nan without ``deepfool``) of ``model``."""
    curve = fooling_ratio_curve(model, data, attack, [eps], norm=norm, n=n, batch_size=batch_size,
                                seed=seed, **attack_options).iloc[0]
    result = {c: float(curve[c]) for c in ("clean_accuracy", "robust_accuracy", "fooling_ratio")}
    result["rho_adv"] = rho_adv(model, data, batch_size=batch_size, n=n) if deepfool else math.nan
    return result


def intervention_table(
    model: nn.Module,
    data: Data,
    kind: str,
    keeps: Sequence[float],
    *,
    attack: str = "pgd",
    eps: float,
    norm: str = "inf",
    n: int | None = None,
    batch_size: int = 256,
    per_layer: bool = False,
    seed: int | None = 0,
    deepfool: bool = True,
    progress: bool | None = None,
    **attack_options: Any,
) -> pd.DataFrame:
    """One row per (layer, keep) with the columns in :data:`COLUMNS`; ``model`` is not modified.

    ``kind`` names an intervention of :data:`~rankrobust.interventions.INTERVENTIONS` (svd,
    svd-energy, prune, prune-global); ``keeps`` are shares in (0, 1]. Without ``per_layer`` every
    layer is intervened on at once (``layer`` = "all"); with it, one layer at a time (``layer`` =
    its path), layers in model order and keeps in the given order within each layer.
    ``attack_options`` (steps, restarts, ...) go to the attack. ``seed=None`` draws one seed from
    torch's global RNG, shared by every row. Progress goes to stderr (:class:`~rankrobust.progress.Progress`:
    a bar on a terminal, a line every ~10 s otherwise; ``progress=False``: none).
    """
    intervention = get_intervention(kind)
    levels = check_keeps(keeps)
    entry = get_attack(attack)
    norm = check_norm(norm)
    entry.check_norm(norm)
    entry.check_options(attack_options)
    eps = check_epsilons([eps])[0]
    if per_layer and not intervention.per_layer:
        raise ConfigError(f"intervention {kind!r} acts on all layers together; it has no per-layer form")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    used = len(data[0]) if n is None else min(n, len(data[0]))  # inputs attacked per row
    names: list[str | None] = [*select_layers(model, None)] if per_layer else [None]
    options: dict[str, Any] = {"attack": attack, "eps": eps, "norm": norm, "n": n,
                               "batch_size": batch_size, "seed": seed, "deepfool": deepfool,
                               **attack_options}
    identity: dict[str, float] | None = None  # keep = 1 leaves every layer as it is: attack once
    rows = []
    with Progress(len(names) * len(levels), f"intervene {kind}", "rows", enabled=progress) as bar:
        for name in names:
            for keep in levels:
                if keep == 1.0:
                    if identity is None:
                        identity = robustness_measures(intervention(model, 1.0), data, **options)
                    values = {**identity, **structure_summary(model, name)}
                else:
                    changed = intervention(model, keep, None if name is None else [name])
                    values = measure(changed, data, layer=name, **options)
                rows.append({"intervention": kind, "layer": ALL_LAYERS if name is None else name,
                             "keep": keep, **values, "attack": attack, "norm": norm,
                             "epsilon": eps, "n": used})
                bar.update()
    return pd.DataFrame(rows, columns=list(COLUMNS))
