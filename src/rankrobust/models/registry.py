"""``build_model(name, in_shape, num_classes, **options)`` and the model catalogue.

Every size is checked before anything is allocated: each of ``in_shape``, ``num_classes`` and
the integer options (``hidden``, ``widths``, ``fc``) must be a positive integer of at most
:data:`MAX_SIZE` (lists at most :data:`MAX_LAYERS` long), an input at most :data:`MAX_INPUT`
values, and the network, first built on PyTorch's ``meta`` device (shapes only, no memory), at
most :data:`MAX_PARAMETERS` parameters. Only then is it built for real.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rankrobust.configuration import brief
from rankrobust.errors import ConfigError
from rankrobust.models.cnn_small import CNNSmall
from rankrobust.models.lenet import LeNet5, LeNet5Wide, LeNet5Wider
from rankrobust.models.mlp import MLP, MLPWide

# Capacity-matched pairs (parameters within ±15 % on 1×28×28, 10 classes; see models.lenet):
# mlp ↔ lenet5-wide, mlp-wide ↔ lenet5-wider.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP, "lenet5": LeNet5, "cnn-small": CNNSmall, "lenet5-wide": LeNet5Wide,
    "mlp-wide": MLPWide, "lenet5-wider": LeNet5Wider,
}

MAX_PARAMETERS = 500_000_000  # 2 GB of float32 weights: larger networks are refused
MAX_SIZE = 1 << 20  # any one size: channels, height, width, classes, hidden units, widths, fc
MAX_INPUT = 1 << 26  # values of one input, C·H·W
MAX_LAYERS = 64  # entries of a list of sizes (hidden, widths)

FAMILIES = ("FC", "CNN")


def model_family(name: str) -> str:
    """The family a registered model declares (``family`` class attribute: FC or CNN)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    family = getattr(MODELS[name], "family", None)
    if family not in FAMILIES:
        raise ConfigError(f"model {name!r} declares no family (FC or CNN)")
    return str(family)


@functools.cache
def _options_of(factory: Callable[..., nn.Module]) -> tuple[str, ...]:
    params = inspect.signature(factory).parameters  # slow: cached per model class
    return tuple(p for p in params if p not in ("in_shape", "num_classes"))


def model_options(name: str) -> list[str]:
    """Names of the keyword options a model accepts (besides in_shape and num_classes)."""
    return list(_options_of(MODELS[name]))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value: Any, where: str) -> int:
    if not _is_int(value) or not 1 <= value <= MAX_SIZE:
        raise ConfigError(f"{where}: expected an integer in 1..{MAX_SIZE}, got {brief(value)}")
    return int(value)


def _check_option(key: str, value: Any, hint: Any, channels: int) -> None:
    """One option against its annotation: sizes are positive ints, statistics finite floats."""
    args = typing.get_args(hint)
    if hint is int:
        _size(value, key)
    elif args and args[0] is int:  # Sequence[int]: hidden, widths
        if not isinstance(value, (list, tuple)) or len(value) > MAX_LAYERS:
            raise ConfigError(f"{key}: expected a list of at most {MAX_LAYERS} sizes, got {brief(value)}")
        for i, v in enumerate(value):
            _size(v, f"{key}[{i}]")
    elif args and args[0] is float:  # Sequence[float]: mean, std (per channel or one for all)
        if not isinstance(value, (list, tuple)) or len(value) not in (1, channels) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        ):
            count = "1" if channels == 1 else f"1 or {channels}"
            raise ConfigError(f"{key}: expected {count} finite numbers, got {brief(value)}")
        if key == "std" and any(v <= 0 for v in value):
            raise ConfigError(f"std: must be > 0, got {brief(value)}")


def check_model(name: str, in_shape: Sequence[int], num_classes: int, options: dict[str, Any]) -> None:
    """Refuse (ConfigError) an unknown model or option, or any size out of bounds (see module
    docstring), without building anything."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {brief(name)}; choose from {', '.join(MODELS)}")
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed), key=str)
    if unknown:
        raise ConfigError(f"model {name!r} has no option {brief(unknown[0])}; options: {', '.join(allowed)}")
    if not isinstance(in_shape, (list, tuple)) or len(in_shape) != 3 or not all(
        _is_int(v) and 1 <= v <= MAX_SIZE for v in in_shape
    ):
        raise ConfigError(f"in_shape must be (C, H, W) with sizes in 1..{MAX_SIZE}, got {brief(in_shape)}")
    if math.prod(in_shape) > MAX_INPUT:
        raise ConfigError(f"in_shape {tuple(in_shape)} has more than {MAX_INPUT} values")
    if not _is_int(num_classes) or not 2 <= num_classes <= MAX_SIZE:
        raise ConfigError(f"num_classes must be an integer in 2..{MAX_SIZE}, got {brief(num_classes)}")
    hints = typing.get_type_hints(MODELS[name].__init__)  # type: ignore[misc]
    for key, value in options.items():
        _check_option(key, value, hints.get(key, Any), int(in_shape[0]))


def _construct(name: str, in_shape: Sequence[int], num_classes: int, options: dict[str, Any]) -> nn.Module:
    try:
        return MODELS[name](in_shape=tuple(int(v) for v in in_shape), num_classes=num_classes, **options)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ConfigError(f"cannot build {name}: {exc}") from None


def state_shapes(
    name: str, in_shape: Sequence[int], num_classes: int, **options: Any
) -> dict[str, tuple[int, ...]]:
    """{state-dict key: shape} of the model, computed on the meta device (no memory), after
    :func:`check_model`; ConfigError beyond :data:`MAX_PARAMETERS` parameters.

    Remembered per (model class, arguments): a study's runs share a few architectures, and
    building one on the meta device costs milliseconds (a 90-run study expanded in 1.5 s)."""
    try:
        key = (MODELS.get(name), name, tuple(in_shape), num_classes,
               json.dumps(options, sort_keys=True))
        hash(key)
    except (TypeError, ValueError):  # unhashable or not JSON: checked (and refused) below
        return _state_shapes(name, in_shape, num_classes, options)
    if key not in _SHAPES:
        if len(_SHAPES) >= 256:
            _SHAPES.clear()
        _SHAPES[key] = _state_shapes(name, in_shape, num_classes, options)
    return dict(_SHAPES[key])


_SHAPES: dict[tuple[Any, ...], dict[str, tuple[int, ...]]] = {}


def _state_shapes(
    name: str, in_shape: Sequence[int], num_classes: int, options: dict[str, Any]
) -> dict[str, tuple[int, ...]]:
    check_model(name, in_shape, num_classes, options)
    with torch.device("meta"):
        meta = _construct(name, in_shape, num_classes, options)
    count = sum(p.numel() for p in meta.parameters())
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"{name} with these sizes has {count:,} parameters, more than the {MAX_PARAMETERS:,} "
            "allowed (rankrobust.models.registry.MAX_PARAMETERS)"
        )
    return {key: tuple(value.shape) for key, value in meta.state_dict().items()}


def meta_model(name: str, in_shape: Sequence[int], num_classes: int, **options: Any) -> nn.Module:
    """The network on PyTorch's meta device (shapes only: no memory, no compute), remembered per
    arguments, for checks and estimates made before anything runs. Shared: do not modify it."""
    key = repr((MODELS.get(name), name, tuple(in_shape), num_classes, sorted(options.items(), key=str)))
    if key not in _META_MODELS:
        state_shapes(name, in_shape, num_classes, **options)
        if len(_META_MODELS) >= 64:
            _META_MODELS.clear()
        with torch.device("meta"):
            _META_MODELS[key] = _construct(name, in_shape, num_classes, options)
    return _META_MODELS[key]


_META_MODELS: dict[str, nn.Module] = {}


def parameter_count(
    name: str, in_shape: Sequence[int], num_classes: int, **options: Any
) -> int:
    """Trainable parameters of the model (weights and biases; not buffers), counted on the
    meta device: no memory is spent, sizes are checked as :func:`build_model` checks them."""
    check_model(name, in_shape, num_classes, options)
    with torch.device("meta"):
        meta = _construct(name, in_shape, num_classes, options)
    return sum(p.numel() for p in meta.parameters() if p.requires_grad)


def build_model(
    name: str, in_shape: Sequence[int], num_classes: int, **options: Any
) -> nn.Module:
    """Build a network that maps x (B, C, H, W) in [0, 1] to logits (B, num_classes).

    Options: ``mean``/``std`` (the first layer's normalization) for every model; ``hidden`` for
    ``mlp`` (default (150, 100)) and ``mlp-wide`` (300, 200); ``channels`` and ``fc`` for the
    ``lenet5`` family; ``widths`` and ``fc`` for ``cnn-small``. Sizes are checked
    first and the parameter count is capped (see the module docstring): ConfigError, one line.
    """
    state_shapes(name, in_shape, num_classes, **options)
    return _construct(name, in_shape, num_classes, options)


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model: its name, input shape, classes and options."""

    name: str
    in_shape: tuple[int, int, int]
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        return build_model(self.name, self.in_shape, self.num_classes, **self.options)

    def to_dict(self) -> dict[str, Any]:
        opts = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return {"name": self.name, "in_shape": list(self.in_shape), "num_classes": self.num_classes,
                "options": opts}

    def parameter_count(self) -> int:
        """Trainable parameters of the model this spec builds (see :func:`parameter_count`)."""
        return parameter_count(self.name, self.in_shape, self.num_classes, **self.options)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """{state-dict key: shape} of the model this spec builds (see :func:`state_shapes`)."""
        return state_shapes(self.name, self.in_shape, self.num_classes, **self.options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """A spec from its ``to_dict`` form; every field strictly typed (no int("3") or 2.7 → 2)."""
        if not isinstance(data, dict):
            raise ConfigError(f"invalid model spec: expected a mapping, got {type(data).__name__}")
        for key in ("name", "in_shape", "num_classes"):
            if key not in data:
                raise ConfigError(f"invalid model spec: missing {key!r}")
        name, shape, classes = data["name"], data["in_shape"], data["num_classes"]
        options = data.get("options", {})
        if not isinstance(name, str):
            raise ConfigError(f"invalid model spec: name must be a string, got {brief(name)}")
        if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) for v in shape):
            raise ConfigError(f"invalid model spec: in_shape must be 3 integers, got {brief(shape)}")
        if not _is_int(classes):
            raise ConfigError(f"invalid model spec: num_classes must be an integer, got {brief(classes)}")
        if not isinstance(options, dict):
            raise ConfigError(f"invalid model spec: options must be a mapping, got {brief(options)}")
        spec = cls(name, (shape[0], shape[1], shape[2]), classes, dict(options))
        check_model(spec.name, spec.in_shape, spec.num_classes, spec.options)
        return spec
