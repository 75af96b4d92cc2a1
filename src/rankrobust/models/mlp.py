"""Fully connected network; default 150-100 hidden units, the authors' FC benchmark net."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from rankrobust.models.normalize import Normalize
from rankrobust.models.registry import register_model

DEFAULT_HIDDEN = (150, 100)


@register_model("mlp", "FC", "fully connected, hidden 150-100 (the paper's FC net)", default=True)
class MLP(nn.Module):
    """x (B, C, H, W) → Normalize → flatten → [Linear → ReLU]* → Linear → logits (B, classes)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        sizes = [math.prod(int(v) for v in in_shape), *hidden]  # no tensor: builds on 'meta' too
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.normalize(x).flatten(1))


@register_model("mlp-wide", "FC", "fully connected, hidden 300-200 (matched to lenet5-wider)")
class MLPWide(MLP):
    """The MLP with 300-200 hidden units: the FC half of the second capacity-matched pair."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (300, 200),
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__(in_shape, num_classes, hidden, mean, std)
