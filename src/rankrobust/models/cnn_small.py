"""A small VGG-style CNN for CIFAR-10: three blocks of two 3×3 convs and a 2×2 max pool."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankrobust.models.layout import channels_last
from rankrobust.models.normalize import Normalize
from rankrobust.models.pooling import MaxPool2x2
from rankrobust.models.registry import register_model

DEFAULT_WIDTHS = (32, 64, 128)


@register_model("cnn-small", "CNN", "VGG-style CNN for CIFAR-10: 3 blocks of two 3×3 convs")
class CNNSmall(nn.Module):
    """[conv3(w) → ReLU → conv3(w) → ReLU → pool]×len(widths) → fc(256) → fc(classes).

    No batch norm on purpose: every layer is a plain weight matrix whose structure we measure,
    and attacks see one deterministic function in eval and train mode alike.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        fc: int = 256,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        super().__init__()
        c, h, w = (int(v) for v in in_shape)
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        for width in widths:
            layers += [
                nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                MaxPool2x2(),
            ]
            c, h, w = width, h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"cnn-small with {len(widths)} blocks needs larger inputs than {in_shape}")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c * h * w, fc), nn.ReLU(), nn.Linear(fc, num_classes)
        )
        channels_last(self)  # faster convolutions and pooling on CPU (models/layout.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)).flatten(1))
