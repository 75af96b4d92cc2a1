"""The weight matrices of a model: Linear and Conv1d/2d/3d weights read as 2-D tensors."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Literal, cast

import torch
from torch import nn

from rankrobust.configuration import closest
from rankrobust.errors import ConfigError

ConvMode = Literal["reshape", "per-tap"]
CONV_MODES: tuple[str, ...] = ("reshape", "per-tap")


def weight_modules(model: nn.Module) -> OrderedDict[str, nn.Module]:
    """{module path: module} for every Linear and Conv1d/2d/3d (incl. transposed), in order."""
    found: OrderedDict[str, nn.Module] = OrderedDict()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            found[name or type(module).__name__] = module
    return found


def layer_kind(module: nn.Module) -> str:
    """"linear" or "conv"."""
    return "linear" if isinstance(module, nn.Linear) else "conv"


def check_conv_mode(conv: str) -> str:
    """``conv`` if it is a known conv mode, else ConfigError with a did-you-mean."""
    if conv not in CONV_MODES:
        raise ConfigError(f"unknown conv mode {conv!r}{closest(conv, list(CONV_MODES))}; "
                          f"expected one of {', '.join(CONV_MODES)}")
    return conv


def layer_matrices(model: nn.Module, conv: ConvMode | str = "reshape") -> OrderedDict[str, torch.Tensor]:
    """Ordered {module path: W (m, n)}, detached views of the weights on the model's device.

    A Linear weight is (out, in). A conv kernel (out, in/groups, k₁, …, k_d) is, with
    ``conv="reshape"``, the matrix (out, in/groups · k₁⋯k_d) (the map on flattened patches);
    with ``conv="per-tap"`` it is k₁⋯k_d matrices W[:, :, i, j, …] of shape (out, in/groups),
    keyed ``"path[i,j]"`` (weightwatcher's slices). Transposed convs store (in, out/groups, k…)
    and are read the same way.
    """
    check_conv_mode(conv)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, module in weight_modules(model).items():
        weight = cast(torch.Tensor, module.weight).detach()
        if weight.ndim == 2:
            out[name] = weight
        elif conv == "reshape":
            out[name] = weight.reshape(weight.shape[0], -1)
        else:
            taps = weight.flatten(2)  # (out, in, k₁⋯k_d), taps in row-major order
            for t, tap in enumerate(itertools.product(*(range(k) for k in weight.shape[2:]))):
                out[f"{name}[{','.join(map(str, tap))}]"] = taps[:, :, t]
    return out
