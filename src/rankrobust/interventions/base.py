"""Shared pieces of the interventions: the share ``keep``, layer selection and weight writes.

Every intervention reads a layer's weight as the matrix W ∈ ℝ^{m×n} that
:func:`rankrobust.structure.layer_matrices` measures: a Linear weight is (out, in), a conv kernel
(out, in/groups, k₁, …) is (out, in/groups·k₁⋯). It works on a ``copy.deepcopy`` of the model,
so the caller's model is never modified, and a layer it leaves alone keeps its weight bit for bit.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize as P

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError
from rankrobust.structure import weight_modules

# keep·total is rounded down by this relative amount before ⌈·⌉, so that float noise such as
# 0.1·30 = 3.0000000000000004 gives 3 rather than 4.
_ROUNDING = 1e-12


def check_keep(keep: float, name: str = "keep") -> float:
    """``keep`` as a float in (0, 1], else ConfigError naming ``name``."""
    try:
        value = float(keep)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in (0, 1], got {keep!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ConfigError(f"{name} must be in (0, 1], got {keep!r}")
    return value


def check_keeps(keeps: Sequence[float], name: str = "keep") -> list[float]:
    """A non-empty list of shares, each in (0, 1]."""
    values = [check_keep(k, name) for k in keeps]
    if not values:
        raise ConfigError(f"{name}: expected at least one share in (0, 1]")
    return values


def share_count(keep: float, total: int) -> int:
    """⌈keep·total⌉ clipped to [1, total] (0 when total = 0): how many of ``total`` items a
    share ``keep`` ∈ (0, 1] keeps."""
    if total <= 0:
        return 0
    return min(total, max(1, math.ceil(keep * total * (1.0 - _ROUNDING))))


def select_layers(model: nn.Module, layers: Sequence[str] | None) -> OrderedDict[str, nn.Module]:
    """{path: module} of the Linear/Conv layers named in ``layers`` (None: every one), in model
    order; the paths are those of :func:`rankrobust.structure.weight_modules` (and ``analyze``)."""
    found = weight_modules(model)
    if not found:
        raise ConfigError(f"{type(model).__name__} has no Linear or Conv layer to intervene on")
    if layers is None:
        return found
    wanted = list(layers)
    if not wanted:
        raise ConfigError("layers: expected at least one layer name")
    for name in wanted:
        if name not in found:
            raise ConfigError(f"unknown layer {name!r}{closest(name, list(found))}; "
                              f"layers: {', '.join(found)}")
    return OrderedDict((name, module) for name, module in found.items() if name in wanted)


def fresh_copy(model: nn.Module) -> nn.Module:
    """An independent deep copy of ``model`` (weights, buffers, mode and device kept)."""
    return copy.deepcopy(model)


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The layer's weight as a detached matrix (m, n): (out, in) or (out, in/groups·k₁⋯)."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    w = weight.detach()
    return w.reshape(w.shape[0], -1)


def set_weight_matrix(module: nn.Module, matrix: torch.Tensor) -> None:
    """Write the matrix (m, n) back into ``module.weight`` in its own shape and dtype.

    A ``torch.nn.utils.parametrize`` weight (e.g. a factorized W = U·V during training) is
    refused: its deep copy shares the injected class with the original, so removing the
    parametrization from the copy would break the caller's model.
    """
    if P.is_parametrized(module, "weight"):
        raise ConfigError(f"{type(module).__name__} has a parametrized weight; intervene on the "
                          "model rebuilt from its checkpoint, which stores the effective weights")
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    with torch.no_grad():
        weight.copy_(matrix.reshape(weight.shape).to(weight.dtype))
