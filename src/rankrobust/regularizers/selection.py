"""Choose the weights a regularizer acts on, as ``(module path, module, parameter name)`` triples.

Default: the ``weight`` of every Linear and Conv layer. A conv kernel (out, in, kh, kw) is read as
the matrix (out, in·kh·kw), as in ``rankrobust.structure``; that matrix is a *view* of the
parameter, so an in-place change of the matrix changes the parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from rankrobust.errors import ConfigError

DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class WeightRef:
    """One regularized weight: ``getattr(module, param)`` living at ``path`` in the model."""

    path: str
    module: nn.Module
    param: str = "weight"

    @property
    def parameter(self) -> torch.Tensor:
        tensor = getattr(self.module, self.param)
        assert isinstance(tensor, torch.Tensor)
        return tensor

    def matrix(self) -> torch.Tensor:
        """The weight as a (rows, cols) matrix view: (out, in) or (out, in·kh·kw)."""
        return as_matrix(self.parameter)

    @property
    def shape(self) -> tuple[int, int]:
        m = self.matrix()
        return int(m.shape[0]), int(m.shape[1])


def as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """(out, ...) → (out, prod(...)); a view when ``weight`` is contiguous."""
    if weight.ndim < 2:
        raise ValueError(f"a weight matrix needs at least 2 dims, got shape {tuple(weight.shape)}")
    return weight.reshape(weight.shape[0], -1)


def select_weights(
    model: nn.Module,
    layers: str = "all",
    types: tuple[type[nn.Module], ...] = DEFAULT_TYPES,
    param: str = "weight",
) -> list[WeightRef]:
    """The ``param`` of every module of one of ``types`` whose path matches ``layers``.

    ``layers`` is "all" or a regular expression searched in the module path (e.g.
    ``"classifier"`` or ``"^features\\.0$"``). Order is the model's module order. Raises
    ConfigError for an invalid pattern or when nothing is selected.
    """
    try:
        pattern = None if layers == "all" else re.compile(layers)
    except re.error as exc:
        raise ConfigError(f"invalid layers pattern {layers!r}: {exc}") from None
    refs: list[WeightRef] = []
    for path, module in model.named_modules():
        if not isinstance(module, types):
            continue
        if pattern is not None and not pattern.search(path):
            continue
        tensor = getattr(module, param, None)
        if isinstance(tensor, nn.Parameter) and tensor.requires_grad:
            refs.append(WeightRef(path, module, param))
    if not refs:
        raise ConfigError(f"layers pattern {layers!r} selects no Linear or Conv weight of the model")
    return refs
