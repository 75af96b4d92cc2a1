"""``product-l1``: the ℓ1 norm of a fully connected network's end-to-end weight product.

    R(W_1, …, W_L) = ‖W_L W_{L−1} ⋯ W_1‖₁   (sum of absolute entries; W_i (out_i, in_i))

This is *one reading* of the "joint" regularizer that a summary of Langenberg et al. (2019)
mentions; the paper's exact definition is unverified. The product ignores biases and
nonlinearities: it is the linear map the network would compute without its ReLUs. Only for
chains of Linear layers (an MLP), where in_{i+1} = out_i.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rankrobust.errors import ConfigError


def check_chain(shapes: Sequence[tuple[int, int]]) -> None:
    """Raise ConfigError unless (out_i, in_i) shapes chain: in_{i+1} = out_i."""
    if not shapes:
        raise ConfigError("product-l1 needs at least one weight matrix")
    for i in range(1, len(shapes)):
        if shapes[i][1] != shapes[i - 1][0]:
            raise ConfigError(
                f"product-l1 needs chained fully connected layers; layer {i} has input size "
                f"{shapes[i][1]} but layer {i - 1} outputs {shapes[i - 1][0]} (use --model mlp)"
            )


def weight_product(matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """W_L ⋯ W_1 for matrices given input-first [W_1, …, W_L]; shape (out_L, in_1).

    Multiplied from the output side, where the narrow classifier keeps every product thin.
    """
    check_chain([(int(m.shape[0]), int(m.shape[1])) for m in matrices])
    product = matrices[-1]
    for m in reversed(matrices[:-1]):
        product = product @ m
    return product


def product_l1_penalty(matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """‖W_L ⋯ W_1‖₁, differentiable in every W_i."""
    return weight_product(matrices).abs().sum()
