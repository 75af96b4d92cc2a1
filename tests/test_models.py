"""Model construction: shapes, options, normalization as the first layer."""

from __future__ import annotations

import pytest
import torch

from rankrobust.errors import ConfigError
from rankrobust.models import MLP, ModelSpec, build_model


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
