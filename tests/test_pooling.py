"""The 2×2 max pool gives ``nn.MaxPool2d(2)``'s numbers bit for bit, with and without a graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import examples
from rankrobust.models import build_model
from rankrobust.models.pooling import MaxPool2x2, max_pool_2x2


@settings(max_examples=examples(60), deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(2, 9), w=st.integers(2, 9),
    levels=st.integers(1, 4), channels_last=st.booleans(), double=st.booleans(),
    nan=st.booleans(), seed=st.integers(0, 2**16),
)
def test_equals_max_pool2d_bit_for_bit(n: int, c: int, h: int, w: int, levels: int,
                                       channels_last: bool, double: bool, nan: bool,
                                       seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-levels, levels, (n, c, h, w), generator=gen).to(
        torch.float64 if double else torch.float32) / levels  # few values: many ties
    if nan:
        x[0, 0, 0, 0] = torch.nan
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    want, got = F.max_pool2d(x, 2), max_pool_2x2(x)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())


def test_unbatched_input_and_memory_format() -> None:
    x = torch.rand(3, 7, 8)
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2))
    xc = torch.rand(2, 3, 6, 6).contiguous(memory_format=torch.channels_last)
    assert max_pool_2x2(xc).is_contiguous(memory_format=torch.channels_last)
    assert max_pool_2x2(torch.rand(2, 3, 6, 6)).is_contiguous()


def test_module_takes_the_fast_path_only_without_a_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    import rankrobust.models.pooling as pooling

    calls: list[int] = []
    monkeypatch.setattr(pooling, "max_pool_2x2", lambda x: calls.append(1) or F.max_pool2d(x, 2))
    pool = MaxPool2x2()
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2
    x = torch.rand(2, 3, 6, 6)
    pool(x)
    with torch.no_grad():
        pool(x.requires_grad_(True))
    assert len(calls) == 2
    out = pool(x)  # autograd records: the native kernel, its gradient routing
    assert len(calls) == 2 and out.requires_grad
    with pytest.raises(RuntimeError, match="(?i)output size"):  # < 2 rows: the native error
        pool(torch.rand(1, 1, 1, 5))


def test_lenet_logits_and_gradients_equal_those_with_native_pooling() -> None:
    torch.manual_seed(0)
    fast = build_model("lenet5", (1, 28, 28), 10)
    native = build_model("lenet5", (1, 28, 28), 10)
    native.load_state_dict(fast.state_dict())
    for i, module in enumerate(native.features):
        if isinstance(module, MaxPool2x2):
            native.features[i] = nn.MaxPool2d(2)
    assert sum(isinstance(m, MaxPool2x2) for m in fast.modules()) == 2
    x = torch.rand(16, 1, 28, 28)
    x[:, :, :6] = 0  # blank rows, as MNIST's background: equal activations, ties in the pools
    with torch.no_grad():
        assert torch.equal(fast(x), native(x))
    y = torch.randint(0, 10, (16,))
    grads = []
    for model in (fast, native):
        xg = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xg), y)
        grads.append(torch.autograd.grad(loss, [xg, *model.parameters()]))
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
