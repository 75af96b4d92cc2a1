"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, as commonly used on MNIST, and its
widened, capacity-matched variants.

Parameters on 1×28×28 inputs, 10 classes (``parameter_count``; tested):

| model | conv channels | fc widths | parameters | FC partner (parameters) |
| --- | --- | --- | --- | --- |
| ``lenet5`` | 6, 16 | 120, 84 | 61,706 | — |
| ``lenet5-wide`` (×1.5) | 9, 24 | 180, 126 | 137,914 | ``mlp`` 150-100 (133,860): +3.0 % |
| ``lenet5-wider`` (×2.25) | 14, 36 | 270, 189 | 309,389 | ``mlp-wide`` 300-200 (297,710): +3.9 % |

A widened LeNet-5 multiplies every width by one factor, so the matched CNN keeps LeNet-5's shape
(two conv + pool stages, three dense layers) and only its capacity changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankrobust.models.layout import channels_last
from rankrobust.models.normalize import Normalize
from rankrobust.models.pooling import MaxPool2x2
from rankrobust.models.registry import register_model


@register_model("lenet5", "CNN", "LeNet-5: conv 6, 16; fc 120, 84", default=True)
class LeNet5(nn.Module):
    """conv5(c₁) → pool → conv5(c₂) → pool → fc(f₁) → fc(f₂) → fc(classes); (c, f) = (6, 16), (120, 84).

    28×28 inputs get padding 2 in the first conv (the classic 32×32 geometry); the flattened size
    is computed from the input shape, so 32×32 (CIFAR) and small synthetic inputs work too.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (6, 16),
        fc: Sequence[int] = (120, 84),
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__()
        if len(channels) != 2 or len(fc) != 2:
            raise ValueError(f"lenet5 takes 2 channels and 2 fc widths, got {list(channels)}, "
                             f"{list(fc)}")
        c1, c2 = (int(v) for v in channels)
        f1, f2 = (int(v) for v in fc)
        c, h, w = (int(v) for v in in_shape)
        pad = 2 if min(h, w) < 32 else 0
        h1, w1 = (h + 2 * pad - 4) // 2, (w + 2 * pad - 4) // 2
        h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
        if h2 < 1 or w2 < 1:
            raise ValueError(f"lenet5 needs inputs of at least 12×12, got {h}×{w}")
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(c, c1, 5, padding=pad), nn.ReLU(), MaxPool2x2(),
            nn.Conv2d(c1, c2, 5), nn.ReLU(), MaxPool2x2(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(c2 * h2 * w2, f1), nn.ReLU(),
            nn.Linear(f1, f2), nn.ReLU(),
            nn.Linear(f2, num_classes),
        )
        channels_last(self)  # faster convolutions and pooling on CPU (models/layout.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)).flatten(1))


@register_model("lenet5-wide", "CNN", "LeNet-5 widened ×1.5 (matched to mlp)")
class LeNet5Wide(LeNet5):
    """LeNet-5 widened ×1.5: channels (9, 24), fc (180, 126); matched to ``mlp`` 150-100."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (9, 24),
        fc: Sequence[int] = (180, 126),
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__(in_shape, num_classes, channels, fc, mean, std)


@register_model("lenet5-wider", "CNN", "LeNet-5 widened ×2.25 (matched to mlp-wide)")
class LeNet5Wider(LeNet5):
    """LeNet-5 widened ×2.25: channels (14, 36), fc (270, 189); matched to ``mlp-wide`` 300-200."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (14, 36),
        fc: Sequence[int] = (270, 189),
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__(in_shape, num_classes, channels, fc, mean, std)
