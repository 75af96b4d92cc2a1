"""The model registry and ``build_model(name, in_shape, num_classes, **options)``.

A model is one module of this package that registers its builder with :func:`register_model`:
a class or function ``(in_shape, num_classes, **options) → nn.Module`` whose keyword options
(annotated: ``int``, ``Sequence[int]`` or ``Sequence[float]``) are its options, plus its family
(FC or CNN, for the report) and whether it is its family's default in a study that names no
models. The package imports every module in it (``rankrobust.registries.import_submodules``),
so a new model is one new file; a module elsewhere registers its models when it is imported.

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
from typing import Any, TypeVar

import torch
from torch import nn

from rankrobust.configuration import brief
from rankrobust.errors import ConfigError
from rankrobust.registries import check_new, lookup

Builder = Callable[..., nn.Module]  # (in_shape, num_classes, **options) → module
B = TypeVar("B", bound=Builder)
FAMILIES = ("FC", "CNN")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder, family (FC | CNN) and a one-line description."""

    name: str
    build: Builder
    family: str
    description: str
    default: bool = False  # the family's model in a study that names none (one per family)

    @property
    def options(self) -> tuple[str, ...]:
        """The builder's keyword options (besides in_shape and num_classes)."""
        return _options_of(self.build)


MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, family: str, description: str | None = None, default: bool = False
) -> Callable[[B], B]:
    """Class or function decorator: register the builder as model ``name`` of ``family``.

    ``description`` defaults to the first line of the builder's docstring. ValueError (at
    import) for a taken name, an unknown family, a second default of a family, or a builder
    that does not take ``in_shape`` and ``num_classes``."""

    def decorate(build: B) -> B:
        if family not in FAMILIES:
            raise ValueError(f"model {name!r}: family must be one of {', '.join(FAMILIES)}, got {family!r}")
        params = inspect.signature(build).parameters
        if not {"in_shape", "num_classes"} <= set(params):
            raise ValueError(f"model {name!r}: the builder must take in_shape and num_classes")
        text = description if description is not None else (inspect.getdoc(build) or name)
        entry = ModelEntry(name, build, family, text.strip().splitlines()[0], default)
        check_new(MODELS, name, entry, "model")
        if default and any(m.default and m.family == family and m.name != name for m in MODELS.values()):
            raise ValueError(f"model {name!r}: family {family} already has a default model")
        MODELS[name] = entry
        return build

    return decorate


def get_model(name: str) -> ModelEntry:
    """The registered model ``name``; ConfigError with a did-you-mean for an unknown name."""
    return lookup(MODELS, name, "model")


def default_models() -> list[str]:
    """[FC model, CNN model]: each family's default, the models of a study that names none."""
    return [m.name for family in FAMILIES for m in MODELS.values() if m.default and m.family == family]


MAX_PARAMETERS = 500_000_000  # 2 GB of float32 weights: larger networks are refused
MAX_SIZE = 1 << 20  # any one size: channels, height, width, classes, hidden units, widths, fc
MAX_INPUT = 1 << 26  # values of one input, C·H·W
MAX_LAYERS = 64  # entries of a list of sizes (hidden, widths)


def model_family(name: str) -> str:
    """The family a registered model declares: FC or CNN."""
    return get_model(name).family


@functools.cache
def _options_of(build: Builder) -> tuple[str, ...]:
    params = inspect.signature(build).parameters.values()  # slow: cached per builder
    return tuple(p.name for p in params if p.name not in ("in_shape", "num_classes")
                 and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _hints(build: Builder) -> dict[str, Any]:
    """The annotations of the builder's options (a class's ``__init__``'s)."""
    return typing.get_type_hints(build.__init__ if isinstance(build, type) else build)  # type: ignore[misc]


def model_options(name: str) -> list[str]:
    """Names of the keyword options a model accepts (besides in_shape and num_classes)."""
    return list(get_model(name).options)


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
    entry = get_model(name)
    allowed = list(entry.options)
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
    hints = _hints(entry.build)
    for key, value in options.items():
        _check_option(key, value, hints.get(key, Any), int(in_shape[0]))


def _construct(name: str, in_shape: Sequence[int], num_classes: int, options: dict[str, Any]) -> nn.Module:
    try:
        return MODELS[name].build(in_shape=tuple(int(v) for v in in_shape), num_classes=num_classes, **options)
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
        key = (_builder(name), name, tuple(in_shape), num_classes,
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


def _builder(name: str) -> Builder | None:
    entry = MODELS.get(name) if isinstance(name, str) else None
    return None if entry is None else entry.build


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
    key = repr((_builder(name), name, tuple(in_shape), num_classes, sorted(options.items(), key=str)))
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
