"""``build_model(name, in_shape, num_classes, **options)`` and the model catalogue."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.models.cnn_small import CNNSmall
from rankrobust.models.lenet import LeNet5
from rankrobust.models.mlp import MLP

MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": MLP, "lenet5": LeNet5, "cnn-small": CNNSmall}


FAMILIES = ("FC", "CNN")


def model_family(name: str) -> str:
    """The family a registered model declares (``family`` class attribute: FC or CNN)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    family = getattr(MODELS[name], "family", None)
    if family not in FAMILIES:
        raise ConfigError(f"model {name!r} declares no family (FC or CNN)")
    return str(family)


def model_options(name: str) -> list[str]:
    """Names of the keyword options a model accepts (besides in_shape and num_classes)."""
    params = inspect.signature(MODELS[name]).parameters
    return [p for p in params if p not in ("in_shape", "num_classes")]


def build_model(
    name: str, in_shape: Sequence[int], num_classes: int, **options: Any
) -> nn.Module:
    """Build a network that maps x (B, C, H, W) in [0, 1] to logits (B, num_classes).

    Options: ``mean``/``std`` (the first layer's normalization) for every model; ``hidden`` for
    ``mlp`` (default (150, 100)); ``widths`` and ``fc`` for ``cnn-small``.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"model {name!r} has no option {unknown[0]!r}; options: {', '.join(allowed)}")
    if len(in_shape) != 3 or any(int(v) < 1 for v in in_shape):
        raise ConfigError(f"in_shape must be (C, H, W) with positive sizes, got {tuple(in_shape)}")
    if num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}")
    try:
        return MODELS[name](in_shape=tuple(int(v) for v in in_shape), num_classes=num_classes, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {name}: {exc}") from None


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        try:
            shape = tuple(int(v) for v in data["in_shape"])
            if len(shape) != 3:
                raise ValueError("in_shape must have 3 entries")
            options = dict(data.get("options") or {})
            return cls(str(data["name"]), (shape[0], shape[1], shape[2]), int(data["num_classes"]), options)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid model spec: {exc}") from None
