"""Magnitude pruning of trained weights: how many of the weights does the model need?

For the entries w₁, …, w_N of a set of weights and a share ``keep`` ∈ (0, 1], pruning keeps the
c = ⌈keep·N⌉ entries of largest |w| and sets the others to 0:

    w'ᵢ = wᵢ · 1[i ∈ top_c(|w|)],       #{i kept} = c exactly

(ties at the threshold are broken by ``torch.topk``, so the count is exact even with equal
magnitudes). Scope "layer" applies the rule to each Linear/Conv weight on its own (every layer
keeps the same share); scope "global" applies it once to all selected weights together (one
magnitude threshold for the whole model, as in Han et al. 2015 / Frankle & Carbin 2019), so
layers with small weights lose more. Only the ``weight`` of Linear/Conv layers is pruned;
biases and other parameters are copied unchanged. keep = 1 returns an exact copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.interventions.base import (
    check_keep,
    fresh_copy,
    select_layers,
    set_weight_matrix,
    share_count,
    weight_matrix,
)

PruneScope = Literal["layer", "global"]
SCOPES: tuple[str, ...] = ("layer", "global")


def magnitude_mask(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """Boolean mask of ``scores``' shape with exactly ⌈keep·numel⌉ True entries: the largest
    |scores|."""
    keep = check_keep(keep)
    flat = scores.detach().reshape(-1).abs()
    count = share_count(keep, flat.numel())
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[torch.topk(flat, count, sorted=False).indices] = True
    return mask.reshape(scores.shape)


def prune_matrix(matrix: torch.Tensor, keep: float) -> torch.Tensor:
    """W with all but its ⌈keep·numel⌉ largest-magnitude entries set to 0; ``matrix`` itself
    when every entry is kept."""
    keep = check_keep(keep)
    if share_count(keep, matrix.numel()) >= matrix.numel():
        return matrix
    return torch.where(magnitude_mask(matrix, keep), matrix, torch.zeros_like(matrix))


def prune_magnitude(
    model: nn.Module,
    keep: float,
    *,
    scope: PruneScope | str = "layer",
    layers: Sequence[str] | None = None,
) -> nn.Module:
    """A copy of ``model`` with its Linear/Conv weights magnitude-pruned (``model`` untouched).

    ``keep`` ∈ (0, 1] is the share of weights kept, per layer (``scope="layer"``) or over all
    selected layers together (``scope="global"``); ``layers`` names the layers to prune (paths as
    in :func:`rankrobust.structure.analyze`; None: all).
    """
    keep = check_keep(keep)
    if scope not in SCOPES:
        raise ConfigError(f"unknown pruning scope {scope!r}; expected one of {', '.join(SCOPES)}")
    out = fresh_copy(model)
    modules = select_layers(out, layers)
    if keep == 1.0:
        return out
    matrices = {name: weight_matrix(module) for name, module in modules.items()}
    if scope == "layer":
        for name, module in modules.items():
            pruned = prune_matrix(matrices[name], keep)
            if pruned is not matrices[name]:
                set_weight_matrix(module, pruned)
        return out
    # global: one top-c over the concatenated magnitudes of every selected layer (on one device)
    device = next(iter(matrices.values())).device
    scores = torch.cat([m.reshape(-1).abs().to(device=device, dtype=torch.float64)
                        for m in matrices.values()])  # (N,)
    masks = magnitude_mask(scores, keep).split([m.numel() for m in matrices.values()])
    for (name, module), mask in zip(modules.items(), masks, strict=True):
        w = matrices[name]
        if not bool(mask.all()):
            set_weight_matrix(module, torch.where(mask.to(w.device).reshape(w.shape), w,
                                                  torch.zeros_like(w)))
    return out
