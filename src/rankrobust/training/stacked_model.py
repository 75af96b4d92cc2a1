"""K networks of one architecture as one module: every weight stacked along a leading run axis.

:func:`stack_networks` copies K equally shaped networks into one ``nn.Module`` whose Linear and
Conv2d layers hold parameters of shape (K, *shape) and whose forward serves all K runs at once.
Activations are *run-folded* along the feature axis, K outermost::

    per-run input   x (B, K·C, H, W)   with x[:, k·C:(k+1)·C] = run k's batch (B, C, H, W)
    shared input    x (B, C, H, W)     one batch that every run sees (runs of one seed)
    logits            (B, K·classes)   view (B, K, classes): run k's logits in [:, k]

so the model's own ``forward`` (``flatten(1)``, ReLU, pooling) runs unchanged: ``flatten(1)`` of
(B, K·C, H, W) lists run k's features contiguously, and elementwise or per-channel modules never
mix runs. Each layer tells the two input forms apart by their width (C vs K·C; ambiguous only for
K = 1, where both are the same computation):

* Linear: shared y = x W_allᵀ + b with W_all (K·out, in), one GEMM; per-run
  y_k = x_k W_kᵀ + b_k by one batched GEMM over (K, B, in).
* Conv2d: shared, one convolution with K·out output channels; per-run, one grouped
  convolution with K·groups groups. Convolutions and pooling run in ``channels_last``
  (2–10× faster on CPU at these widths).

Only architectures known to be run-safe stack (:func:`can_stack_network`): the registry's
networks and ``nn.Sequential`` built from the modules in :data:`RUN_SAFE`. Everything else trains
solo. Batch statistics (BatchNorm) and random masks (Dropout) are deliberately not run-safe.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.models.cnn_small import CNNSmall
from rankrobust.models.lenet import LeNet5, LeNet5Wide, LeNet5Wider
from rankrobust.models.mlp import MLP, MLPWide
from rankrobust.models.normalize import Normalize
from rankrobust.models.pooling import MaxPool2x2

# Modules without parameters whose forward acts per sample and per channel (or elementwise).
RUN_SAFE: tuple[type[nn.Module], ...] = (
    nn.Sequential, nn.Identity, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU,
    nn.MaxPool2d, MaxPool2x2, nn.AvgPool2d, MLP, MLPWide, LeNet5, LeNet5Wide, LeNet5Wider, CNNSmall,
)
STACKED_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d, Normalize)


def _stacked(tensors: Sequence[torch.Tensor | None]) -> nn.Parameter | None:
    """The K runs' copies of one parameter as a new (K, *shape) parameter (None for no bias)."""
    present = [t.detach() for t in tensors if t is not None]
    return nn.Parameter(torch.stack(present).clone()) if present else None


class StackedLinear(nn.Module):
    """K Linear layers: weight (K, out, in), bias (K, out); x (B, in) shared or (B, K·in)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.runs, self.in_features = len(layers), layers[0].in_features
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())
        self.bias = _stacked([m.bias for m in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, (_, out, n_in) = self.runs, self.weight.shape
        if x.shape[-1] == n_in:  # shared: (B, in) @ (in, K·out)
            bias = None if self.bias is None else self.bias.reshape(-1)
            return F.linear(x, self.weight.reshape(k * out, n_in), bias)
        xs = x.reshape(x.shape[0], k, n_in).transpose(0, 1)  # (K, B, in)
        w = self.weight.transpose(1, 2)  # (K, in, out)
        y = torch.bmm(xs, w) if self.bias is None else torch.baddbmm(self.bias[:, None], xs, w)
        return y.transpose(0, 1).reshape(x.shape[0], k * out)  # (B, K·out)


class StackedConv2d(nn.Module):
    """K Conv2d layers: weight (K, out, in/g, kh, kw); x (B, in, H, W) shared or (B, K·in, H, W)."""

    def __init__(self, layers: Sequence[nn.Conv2d]) -> None:
        super().__init__()
        first = layers[0]
        if first.padding_mode != "zeros" or isinstance(first.padding, str):
            raise ValueError("stacked Conv2d supports numeric zero padding only")
        self.runs, self.in_channels, self.groups = len(layers), first.in_channels, first.groups
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())
        self.bias = _stacked([m.bias for m in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = x.shape[1] == self.in_channels
        w = self.weight.reshape(-1, *self.weight.shape[2:])  # (K·out, in/g, kh, kw)
        bias = None if self.bias is None else self.bias.reshape(-1)
        if shared and self.groups == 1:
            return self._shared_gemm(x, w, bias)
        groups = self.groups * (1 if shared else self.runs)
        x = x.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, w, bias, self.stride, self.padding, self.dilation, groups)
        return y.contiguous(memory_format=torch.channels_last)  # (B, K·out, H', W')

    def _shared_gemm(
        self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """One input for all runs as one GEMM: cols (B·H'·W', C·kh·kw) @ W_allᵀ (C·kh·kw, K·out).

        The product is laid out (B, H', W', K·out): the ``channels_last`` form of the output, so
        no copy follows; its weight gradient is one GEMM too (mkldnn is slow at C = 1).
        """
        b, _, h, wd = x.shape
        kh, kw = w.shape[-2:]
        oh, ow = (
            (size + 2 * pad - dil * (k - 1) - 1) // st + 1
            for size, pad, dil, k, st in zip((h, wd), self.padding, self.dilation, (kh, kw),
                                             self.stride, strict=True)
        )
        cols = F.unfold(x, (kh, kw), self.dilation, self.padding, self.stride)  # (B, C·kh·kw, L)
        cols = cols.transpose(1, 2).reshape(b * oh * ow, -1)  # (B·L, C·kh·kw)
        flat = w.reshape(w.shape[0], -1).T  # (C·kh·kw, K·out)
        y = cols @ flat if bias is None else torch.addmm(bias, cols, flat)  # (B·L, K·out)
        return y.view(b, oh, ow, -1).permute(0, 3, 1, 2)  # (B, K·out, H', W'), channels_last


class StackedNormalize(nn.Module):
    """(x − mean) / std per channel, for x (B, C, H, W) shared or (B, K·C, H, W) per-run."""

    def __init__(self, module: Normalize, runs: int) -> None:
        super().__init__()
        self.runs, self.inner = runs, copy.deepcopy(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.inner.mean.shape[1]
        if x.shape[1] == c or c == 1:
            return self.inner(x)
        b, _, h, w = x.shape
        return self.inner(x.reshape(b * self.runs, c, h, w)).reshape(x.shape)


def can_stack_network(net: nn.Module) -> bool:
    """Whether every submodule is run-safe or stackable and no parameter lives elsewhere."""
    for module in net.modules():
        if isinstance(module, STACKED_TYPES):
            if isinstance(module, nn.Conv2d) and (
                module.padding_mode != "zeros" or isinstance(module.padding, str)
            ):
                return False
            continue
        if type(module) not in RUN_SAFE or any(True for _ in module.parameters(recurse=False)):
            return False
        if any(True for _ in module.buffers(recurse=False)):
            return False
    return True


def _same_buffers(nets: Sequence[nn.Module]) -> bool:
    first = dict(nets[0].named_buffers())
    return all(
        all(torch.equal(first[k], v) for k, v in net.named_buffers()) for net in nets[1:]
    )


def stack_networks(nets: Sequence[nn.Module]) -> nn.Module:
    """One module serving the K networks ``nets`` (same architecture, same Normalize statistics).

    Parameters are copied: the result is independent of ``nets``; see :func:`unstack_into`.
    Raises ValueError when the networks are not run-safe or not alike.
    """
    if not nets or not all(can_stack_network(n) for n in nets):
        raise ValueError("only run-safe networks stack (see rankrobust.training.stacked_model)")
    shapes = [[(k, tuple(v.shape)) for k, v in n.state_dict().items()] for n in nets]
    if any(s != shapes[0] for s in shapes[1:]) or not _same_buffers(nets):
        raise ValueError("stacked networks need one architecture and equal buffers")
    stacked = copy.deepcopy(nets[0])
    members = [dict(n.named_modules()) for n in nets]
    for path, module in list(stacked.named_modules()):
        if not isinstance(module, STACKED_TYPES):
            continue
        layers = [m[path] for m in members]
        new: nn.Module
        if isinstance(module, nn.Linear):
            new = StackedLinear(layers)  # type: ignore[arg-type]
        elif isinstance(module, nn.Conv2d):
            new = StackedConv2d(layers)  # type: ignore[arg-type]
        else:
            new = StackedNormalize(module, len(nets))  # type: ignore[arg-type]
        parent_path, _, name = path.rpartition(".")
        stacked.get_submodule(parent_path).register_module(name, new)
    return stacked


def stacked_parameters(stacked: nn.Module) -> dict[str, nn.Parameter]:
    """``{solo parameter name: stacked parameter (K, *shape)}``, e.g. ``"layers.0.weight"``."""
    return dict(stacked.named_parameters())


@torch.no_grad()
def unstack_into(stacked: nn.Module, nets: Sequence[nn.Module]) -> None:
    """Copy run k's slice of every stacked parameter into ``nets[k]`` (same names)."""
    params = stacked_parameters(stacked)
    for k, net in enumerate(nets):
        for name, p in net.named_parameters():
            p.copy_(params[name][k])
