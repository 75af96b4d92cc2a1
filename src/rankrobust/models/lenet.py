"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, as commonly used on MNIST."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankrobust.models.normalize import Normalize
from rankrobust.models.pooling import MaxPool2x2


class LeNet5(nn.Module):
    """conv5(6) → pool → conv5(16) → pool → fc120 → fc84 → fc(classes).

    28×28 inputs get padding 2 in the first conv (the classic 32×32 geometry); the flattened size
    is computed from the input shape, so 32×32 (CIFAR) and small synthetic inputs work too.
    """

    family = "CNN"  # model family in the report (FC | CNN)

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__()
        c, h, w = (int(v) for v in in_shape)
        pad = 2 if min(h, w) < 32 else 0
        h1, w1 = (h + 2 * pad - 4) // 2, (w + 2 * pad - 4) // 2
        h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
        if h2 < 1 or w2 < 1:
            raise ValueError(f"lenet5 needs inputs of at least 12×12, got {h}×{w}")
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=pad), nn.ReLU(), MaxPool2x2(),
            nn.Conv2d(6, 16, 5), nn.ReLU(), MaxPool2x2(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * h2 * w2, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)).flatten(1))
