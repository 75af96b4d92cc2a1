"""2×2 max pooling whose forward-only passes are ~6× faster on CPU, with ``nn.MaxPool2d(2)``'s
numbers bit for bit.

torch's CPU kernel for ``max_pool2d`` scans every window element by element; at LeNet-5's widths
((B, 6, 28, 28) after the first convolution) it took 20–28 % of a forward pass. For kernel 2,
stride 2, no padding, the pool is four strided views of the input and three elementwise maxima:

    out[…, i, j] = max(x[…, 2i, 2j], x[…, 2i, 2j+1], x[…, 2i+1, 2j], x[…, 2i+1, 2j+1])

over the first ⌊H/2⌋·2 rows and ⌊W/2⌋·2 columns: exact, as a maximum does not round (NaN
propagates as in ``max_pool2d``). This path serves passes that build no graph (``torch.no_grad``
or inputs that need no gradient): predictions, accuracy, Square's queries, PGD's final scoring.
When autograd records, ``nn.MaxPool2d``'s own kernel runs, so that gradients keep its routing
(the whole gradient to the first maximum of a window; ties are common on blank backgrounds, and
an exact copy of that routing in tensor ops cost more in the backward than it saved in the
forward, benchmarks/RESULTS.md "max pooling").
"""

from __future__ import annotations

import torch
from torch import nn


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)``'s values for x (N, C, H, W) or (C, H, W), H, W ≥ 2 (no indices,
    no gradient routing: see the module docstring). Memory format follows the input."""
    h, w = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    top = torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2])
    return torch.maximum(top, torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)``; passes without a graph on CPU take :func:`max_pool_2x2`."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.is_floating_point() and x.ndim in (3, 4)
                and x.shape[-2] >= 2 and x.shape[-1] >= 2
                and not (x.requires_grad and torch.is_grad_enabled())):
            return max_pool_2x2(x)
        return super().forward(x)
