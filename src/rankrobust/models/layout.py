"""Memory layout of the convolutional models: 4-D weights channels-last (NHWC).

With its weights channels-last, a convolution runs oneDNN's NHWC kernels and returns NHWC
activations, and ``max_pool2d`` (the native kernel, which serves every pass that records a
graph) takes its vectorized channels-last path instead of a per-window scalar scan. On one CPU
thread (torch 2.13, ``benchmarks/bench_train.py``, ``benchmarks/RESULTS.md`` "channels-last"):
a training step of ``lenet5-wide`` 1.36–1.51× faster, a forward+backward to the input (every
PGD / APGD step) 1.22–1.29×; ``lenet5`` and ``cnn-small`` 1.0–1.34×.

Values are the same functions of the same parameters; only the order of floating-point sums
inside a convolution changes, so results differ from contiguous weights in the last bits (and
a model's numbers are reproducible for a given layout, not across layouts). Logical shapes,
``state_dict`` keys and checkpoint files are unchanged: a checkpoint is written contiguous and
``load_state_dict`` copies into the channels-last parameters. ``flatten`` before the classifier
copies to the logical (N, C, H, W) order, so the fully connected weights see what they always saw.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn


def channels_last(module: nn.Module) -> nn.Module:
    """``module`` with every 4-D parameter and buffer in ``torch.channels_last``, in place."""
    # Module.to's memory_format keyword exists at run time, not in torch's type stubs
    return cast(nn.Module, cast(Any, module).to(memory_format=torch.channels_last))
