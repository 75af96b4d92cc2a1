"""The fast 2×2 max pool is ``nn.MaxPool2d(2)``, bit for bit, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rankrobust.models import build_model
from rankrobust.models.pooling import MaxPool2x2, max_pool_2x2


def both(x: torch.Tensor, grad_seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(native out, ours out, native ∂x, ours ∂x) for one upstream gradient."""
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_a, out_b = F.max_pool2d(a, 2), max_pool_2x2(b)
    g = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=x.dtype)
    out_a.backward(g)
    out_b.backward(g)
    assert a.grad is not None and b.grad is not None
    return out_a, out_b, a.grad, b.grad


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(2, 9), w=st.integers(2, 9),
    levels=st.integers(1, 4), channels_last=st.booleans(), double=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_equals_max_pool2d_bit_for_bit(n: int, c: int, h: int, w: int, levels: int,
                                       channels_last: bool, double: bool, seed: int) -> None:
    # few distinct values: most windows hold ties, where the gradient's routing matters
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (n, c, h, w), generator=gen).to(
        torch.float64 if double else torch.float32) / levels
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out_a, out_b, grad_a, grad_b = both(x, seed)
    assert out_b.dtype == out_a.dtype and out_b.shape == out_a.shape
    assert torch.equal(out_a, out_b)
    assert torch.equal(grad_a, grad_b)  # odd rows/columns get no gradient in both


def test_ties_route_to_the_first_position_in_scan_order() -> None:
    x = torch.tensor([[[[1.0, 3.0], [3.0, 3.0]]]], requires_grad=True)  # max 3 at (0,1), (1,0), (1,1)
    max_pool_2x2(x).sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


def test_unbatched_input_and_memory_format_follow_the_input() -> None:
    x = torch.rand(3, 6, 8)
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))
    xc = torch.rand(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    assert max_pool_2x2(xc).is_contiguous(memory_format=torch.channels_last)


def test_module_is_a_max_pool_and_falls_back_outside_the_fast_path() -> None:
    pool = MaxPool2x2()
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2
    ints = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(pool(ints), F.max_pool2d(ints, 2))
    with pytest.raises(RuntimeError, match="(?i)output size"):  # < 2 rows: the native error
        pool(torch.rand(1, 1, 1, 5))


def test_lenet_gradients_equal_those_with_native_pooling() -> None:
    torch.manual_seed(0)
    fast = build_model("lenet5", (1, 28, 28), 10)
    native = build_model("lenet5", (1, 28, 28), 10)
    native.load_state_dict(fast.state_dict())
    for i, module in enumerate(native.features):
        if isinstance(module, MaxPool2x2):
            native.features[i] = nn.MaxPool2d(2)
    x = torch.rand(16, 1, 28, 28)
    x[:, :, :6] = 0  # blank rows, as MNIST's background: equal activations, ties in the pools
    y = torch.randint(0, 10, (16,))
    grads = []
    for model in (fast, native):
        xg = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xg), y)
        params = list(model.parameters())
        grads.append(torch.autograd.grad(loss, [xg, *params]))
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
