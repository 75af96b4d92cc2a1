"""2×2 max pooling, exact and fast on CPU: the same numbers as ``nn.MaxPool2d(2)``, 5–9× faster.

torch's CPU kernel for ``max_pool2d`` scans every window element by element; at the widths of
this project's CNNs (LeNet-5: (B, 6, 28, 28) after the first convolution) it took about a
quarter of a forward pass (benchmarks/RESULTS.md, "max pooling"). For kernel 2, stride 2, no
padding, the pool is four strided views of the input and three elementwise maxima:

    out[b, c, i, j] = max(x[2i, 2j], x[2i, 2j+1], x[2i+1, 2j], x[2i+1, 2j+1])   (rows, cols ≤ ⌊H/2⌋·2)

which is exact (a maximum does not round). The backward routes each window's gradient to the
*first* position in scan order (row-major) that holds the maximum, as ``max_pool2d``'s indices
do: ties are common (background pixels make equal activations), and splitting the gradient
among them, as ``amax`` does, would change input gradients and with them every attack and
adversarial training step. Inputs and gradients are therefore bit-identical to
``nn.MaxPool2d(2)`` (tested), except in windows holding NaN (the gradient then goes to the
window's last position).

The fast path applies to 4-D (or 3-D) floating CPU tensors with the default settings
(kernel 2, stride 2, padding 0, dilation 1, floor mode, no indices); anything else is
``nn.MaxPool2d``'s own forward. Memory format follows the input (``channels_last`` stays so).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _quarters(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The four strided views of x (..., H, W) at (row, col) offsets (0,0), (0,1), (1,0), (1,1),
    each (..., ⌊H/2⌋, ⌊W/2⌋), in the scan order of a 2×2 window."""
    h, w = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    return (x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2], x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2])


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d = _quarters(x)
        out = torch.maximum(torch.maximum(a, b), torch.maximum(c, d))
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, out = ctx.saved_tensors
        a, b, c, _ = _quarters(x)
        first = a == out  # the first position holding the maximum takes the gradient
        second = (b == out) & ~first
        taken = first | second
        third = (c == out) & ~taken
        fourth = ~(taken | third)
        grad_x = torch.zeros_like(x) if x.shape[-2] % 2 or x.shape[-1] % 2 else torch.empty_like(x)
        for view, mask in zip(_quarters(grad_x), (first, second, third, fourth), strict=True):
            torch.mul(grad, mask, out=view)  # every element of the cropped area written once
        return grad_x


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` for x (N, C, H, W) or (C, H, W), computed as described above."""
    return _MaxPool2x2.apply(x)  # type: ignore[no-any-return]


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` with the fast exact path on CPU (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.is_floating_point() and x.ndim in (3, 4)
                and x.shape[-2] >= 2 and x.shape[-1] >= 2):
            return max_pool_2x2(x)
        return super().forward(x)
