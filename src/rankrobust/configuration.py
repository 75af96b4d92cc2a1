"""Strict dataclass configs: build from plain dicts, reject unknown keys with a suggestion.

Every config in rankrobust is a dataclass of plain values (numbers, strings, tuples, nested
dataclasses), so it serializes to JSON/YAML and back unchanged and can be hashed into a run id.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from rankrobust.errors import ConfigError

T = TypeVar("T")


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``: the one-line check of every config's
    ``__post_init__``."""
    if not condition:
        raise ConfigError(message)


MAX_SEED = 2**63 - 1  # torch.manual_seed and SQLite INTEGER (signed 64 bit) both stop here
SEED_RANGE = "0..2**63-1"  # MAX_SEED as messages show it


def check_seed(seed: Any, where: str) -> int:
    """``seed`` when it is an integer in 0..:data:`MAX_SEED` (the one rule for every seed: a
    command's ``--seed``, a study's ``seeds``, an attack's ``seed`` option); ConfigError naming
    ``where`` otherwise."""
    require(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED,
            f"{where}: a seed must be an integer in {SEED_RANGE}, got {brief(seed)}")
    return int(seed)


def brief(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error about a huge value stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (for messages quoted inside an error)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def closest(name: str, options: list[str]) -> str:
    """' (did you mean X?)' for the nearest valid option, or '' when nothing is close."""
    hit = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" (did you mean {hit[0]!r}?)" if hit else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    from_config = getattr(tp, "from_config", None)
    if callable(from_config):  # a polymorphic config (e.g. a training method) parses itself
        return from_config(value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}"
                + (closest(str(value), [str(a) for a in args]) if isinstance(value, str) else "")
            )
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """A dataclass's resolved type hints and init fields (cached: resolving hints is slow)."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    return typing.get_type_hints(cls), fields


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError, and
    so do the checks of ``cls.__post_init__`` (the one place a config validates itself), each
    message naming its dotted path below ``where`` (:func:`at`)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    assert dataclasses.is_dataclass(cls)
    hints, fields = _schema(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"unknown key {path!r}{closest(str(key), list(fields))}")
        kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)  # a config checks itself in __post_init__
    except ConfigError as exc:
        if not where:
            raise
        raise ConfigError(at(where, str(exc))) from None


def at(where: str, message: str) -> str:
    """``message`` of a config's own check (relative to it: ``n: must be ≥ 1``, or no path at
    all) with the config's dotted path ``where`` in front, unless it already names it."""
    if message.startswith(("unknown key", f"{where}.", f"{where}:", f"{where}[")):
        return message
    if re.match(r"^[\w\[\]\.]+: ", message):  # "attacks[0].epsilons: ..." → "evaluation.attacks[0]..."
        return f"{where}.{message}"
    return f"{where}: {message}"


def to_dict(obj: Any) -> Any:
    """Plain-JSON form of a (nested) dataclass config: tuples become lists.

    An object with a ``to_config()`` method (e.g. a training method) gives its own form.
    """
    to_config = getattr(obj, "to_config", None)
    if callable(to_config) and not isinstance(obj, type):
        return to_dict(to_config())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
