"""A researcher's own network and training loop, in plain PyTorch: what ``--model-factory`` reads.

Three habits of research code that rankrobust bridges on the command line:

* the width is an argument of the factory          → ``--factory-arg width=8``
* the network returns a dict, not a logits tensor  → ``--logits logits``
* it was trained on normalized inputs (x − 0.5) / 0.25, and knows nothing of it
                                                   → ``--mean 0.5 --std 0.25``

    rankrobust evaluate examples/own_model/mynet.safetensors \\
        --model-factory examples/own_model/mynet.py:make_net --factory-arg width=8 \\
        --logits logits --mean 0.5 --std 0.25 --dataset synthetic --attack pgd --eps 0.05,0.1,0.2

``python examples/own_model/mynet.py`` retrains it (seconds, seeded) and rewrites
``mynet.safetensors``: 2 conv layers and a linear one, for rankrobust's 1×16×16, 4-class
``synthetic`` data.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.5, 0.25


class MyNet(nn.Module):
    """z (B, 1, 16, 16), normalized → {"logits": (B, K), "features": (B, 2·width·16)}."""

    def __init__(self, width: int = 4, num_classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, stride=2)
        self.head = nn.Linear(2 * width * 4 * 4, num_classes)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.max_pool2d(F.relu(self.conv1(z)), 2)  # (B, w, 8, 8)
        features = F.relu(self.conv2(h)).flatten(1)  # (B, 2w·4·4)
        return {"logits": self.head(features), "features": features}


def make_net(width: int = 4, num_classes: int = 4) -> MyNet:
    return MyNet(width, num_classes)


def train(width: int = 8, epochs: int = 8, seed: int = 0) -> MyNet:
    """A plain loop: Adam, cross-entropy on normalized inputs."""
    from rankrobust.data import load_dataset  # only for the data

    torch.manual_seed(seed)
    x, y = load_dataset("synthetic", "train")
    model = make_net(width)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(32):
            loss = F.cross_entropy(model((x[idx] - MEAN) / STD)["logits"], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


if __name__ == "__main__":
    from safetensors.torch import save_file

    net = train()
    out = Path(__file__).with_name("mynet.safetensors")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out)
    print(f"wrote {out}")
