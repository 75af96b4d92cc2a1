"""Model construction: shapes, options, normalization as the first layer."""

from __future__ import annotations

import pytest
import torch

from rankrobust.errors import ConfigError
from rankrobust.models import MLP, ModelSpec, build_model, model_family


@pytest.mark.parametrize(
    ("name", "shape"),
    [("mlp", (1, 28, 28)), ("lenet5", (1, 28, 28)), ("lenet5", (3, 32, 32)), ("lenet5", (1, 16, 16)),
     ("cnn-small", (3, 32, 32)), ("cnn-small", (1, 16, 16))],
)
def test_models_map_images_to_logits(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, shape, 7)
    assert model(torch.rand(3, *shape)).shape == (3, 7)


def test_mlp_default_is_150_100_and_hidden_configurable() -> None:
    m = build_model("mlp", (1, 28, 28), 10)
    assert isinstance(m, MLP)
    sizes = [(layer.in_features, layer.out_features) for layer in m.layers if isinstance(layer, torch.nn.Linear)]
    assert sizes == [(784, 150), (150, 100), (100, 10)]
    m2 = build_model("mlp", (1, 28, 28), 10, hidden=[32])
    assert [lay.out_features for lay in m2.layers if isinstance(lay, torch.nn.Linear)] == [32, 10]


def test_normalization_is_the_first_layer() -> None:
    m = build_model("mlp", (1, 4, 4), 2, hidden=[3], mean=[0.5], std=[0.25])
    x = torch.rand(2, 1, 4, 4)
    ref = m.layers(((x - 0.5) / 0.25).flatten(1))
    assert torch.allclose(m(x), ref)


def test_unknown_model_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("resnet", (1, 28, 28), 10)
    with pytest.raises(ConfigError, match="no option 'hiden'"):
        build_model("mlp", (1, 28, 28), 10, hiden=[3])
    with pytest.raises(ConfigError, match="12"):
        build_model("lenet5", (1, 8, 8), 10)


def test_model_spec_roundtrip() -> None:
    spec = ModelSpec("cnn-small", (1, 16, 16), 4, {"widths": [4, 8]})
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.build()(torch.rand(1, 1, 16, 16)).shape == (1, 4)


def _lenet_count(c1: int, c2: int, f1: int, f2: int) -> int:
    """Closed form on 1×28×28 (padding 2: 28 → 14 → 10 → 5), 10 classes: weights + biases."""
    return (c1 * 25 + c1) + (c2 * c1 * 25 + c2) + (c2 * 25 * f1 + f1) + (f1 * f2 + f2) + (f2 * 10 + 10)


def test_capacity_matched_pairs_have_parameter_counts_within_15_percent() -> None:
    from rankrobust.models import parameter_count

    shape = (1, 28, 28)
    mlp = parameter_count("mlp", shape, 10)
    assert mlp == 784 * 150 + 150 + 150 * 100 + 100 + 100 * 10 + 10 == 133_860
    assert parameter_count("mlp-wide", shape, 10) == 784 * 300 + 300 + 300 * 200 + 200 + 2010
    assert parameter_count("lenet5", shape, 10) == _lenet_count(6, 16, 120, 84) == 61_706
    assert parameter_count("lenet5-wide", shape, 10) == _lenet_count(9, 24, 180, 126) == 137_914
    assert parameter_count("lenet5-wider", shape, 10) == _lenet_count(14, 36, 270, 189)
    for fc, cnn in (("mlp", "lenet5-wide"), ("mlp-wide", "lenet5-wider")):
        ratio = parameter_count(cnn, shape, 10) / parameter_count(fc, shape, 10)
        assert 0.85 <= ratio <= 1.15, (fc, cnn, ratio)
        assert model_family(fc) == "FC" and model_family(cnn) == "CNN"
    built = build_model("lenet5-wide", shape, 10)  # the count is the built network's
    assert sum(p.numel() for p in built.parameters()) == 137_914
    assert ModelSpec("lenet5-wide", shape, 10).parameter_count() == 137_914
    with pytest.raises(ConfigError, match="takes 2 channels"):
        build_model("lenet5", shape, 10, channels=[6, 16, 32])


@pytest.mark.parametrize(("name", "shape"), [("lenet5", (1, 28, 28)), ("lenet5-wide", (3, 32, 32)),
                                             ("cnn-small", (1, 16, 16))])
def test_convolutional_models_keep_channels_last_weights_with_the_same_function(
        name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(name, shape, 10)
    convs = [p for p in model.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert all(not p.is_contiguous() for p in convs if p.shape[1] > 1)  # really NHWC, not a no-op
    contiguous = build_model(name, shape, 10)
    for mine, theirs in zip(contiguous.parameters(), model.parameters(), strict=True):
        mine.data = theirs.detach().clone(memory_format=torch.contiguous_format)
    x = torch.rand(5, *shape)
    torch.testing.assert_close(model(x), contiguous(x), rtol=1e-5, atol=1e-5)  # same function
    fresh = build_model(name, shape, 10)
    fresh.load_state_dict(contiguous.state_dict())  # a checkpoint's contiguous tensors
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in fresh.parameters() if p.ndim == 4)
    assert torch.equal(fresh(x), model(x))
    opt = torch.optim.Adam(model.parameters())
    torch.nn.functional.cross_entropy(model(x), torch.arange(5)).backward()
    opt.step()  # training keeps the layout (grads and optimizer state follow the parameter)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
