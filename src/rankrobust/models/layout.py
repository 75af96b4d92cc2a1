"""Memory layout of the convolutional models: 4-D weights channels-last (NHWC).

With its weights channels-last, a convolution runs oneDNN's NHWC kernels and returns NHWC
activations, and ``max_pool2d`` (the native kernel, which serves every pass that records a
graph) takes its vectorized channels-last path instead of a per-window scalar scan. On one CPU
thread (torch 2.13, ``benchmarks/bench_layout.py``, CPU time beside another job, load ≈ 2.5;
``benchmarks/RESULTS.md`` "bench_run"): a
training step of ``lenet5-wide`` 1.5× faster, a forward+backward to the input (every PGD / APGD
step) 1.24–1.30×; ``cnn-small`` 1.3× both; ``lenet5`` 1.25× / 1.00×. A whole study run of
``lenet5-wide`` (training and evaluation): 0.72× the worker time (``benchmarks/bench_run.py``).

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
